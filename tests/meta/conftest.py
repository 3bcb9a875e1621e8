import pytest

from meta_fixtures import make_tiny_config


@pytest.fixture
def tiny_config():
    return make_tiny_config
