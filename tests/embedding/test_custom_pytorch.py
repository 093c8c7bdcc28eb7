"""Custom PyTorch modules: TorchScript and safetensors load safely; pickles only when trusted."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rag_factory.errors import InvalidConfigError, UntrustedModelFileError
from rag_factory.models.embedding import CustomModelLoader, ModelConfig

pytestmark = pytest.mark.slow

TOKENIZER_FILES = ("tokenizer.json", "config.json", "sentence_bert_config.json", "1_Pooling")


def _with_tokenizer(minilm_dir: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        source = minilm_dir / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="module")
def traced_minilm(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real MiniLM traced to TorchScript, returning token embeddings."""
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(str(minilm_dir), attn_implementation="eager").eval()

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    example = (torch.ones((2, 12), dtype=torch.long), torch.ones((2, 12), dtype=torch.long))
    traced = torch.jit.trace(TokenEmbeddings().eval(), example, check_trace=False, strict=False)
    directory = _with_tokenizer(minilm_dir, tmp_path_factory.mktemp("torchscript"))
    traced.save(str(directory / "model.pt"))
    return directory


def test_torchscript_module_reproduces_the_source_model(
    traced_minilm: Path, shared_loader: CustomModelLoader, sample_texts: list[str]
) -> None:
    reference = shared_loader.load_model(
        ModelConfig(model_path="sentence-transformers/all-MiniLM-L6-v2", model_format="huggingface")
    ).encode(sample_texts)
    model = CustomModelLoader().load_model(ModelConfig(model_path=str(traced_minilm), model_format="pytorch"))
    assert model.info.backend == "pytorch"
    vectors = model.encode(sample_texts)
    assert ((vectors * reference).sum(1)).min() >= 0.9999


def test_safetensors_weights_load_into_the_named_module_class(
    minilm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import save_file

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    from custom_modules import BagOfEmbeddings

    torch.manual_seed(0)
    module = BagOfEmbeddings(dim=32)
    directory = _with_tokenizer(minilm_dir, tmp_path / "bag")
    save_file(module.state_dict(), str(directory / "weights.safetensors"))
    config = ModelConfig(
        model_path=str(directory),
        model_format="pytorch",
        additional_config={"module_class": "custom_modules:BagOfEmbeddings", "module_kwargs": {"dim": 32}},
    )
    model = CustomModelLoader().load_model(config)
    assert model.embedding_dim == 32
    # Mean of the looked-up rows, computed by hand, is what the backend must return.
    ids = [101, 7592, 2088, 102]  # "[CLS] hello world [SEP]"
    expected = module.table.weight[ids].mean(0).detach().numpy()
    expected /= np.linalg.norm(expected)
    assert np.allclose(model.encode(["hello world"])[0], expected, atol=1e-5)


def test_safetensors_without_a_module_class_is_a_config_error(minilm_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    directory = _with_tokenizer(minilm_dir, tmp_path / "weights-only")
    save_file({"w": torch.zeros(2)}, str(directory / "weights.safetensors"))
    with pytest.raises(InvalidConfigError, match="module_class"):
        CustomModelLoader().load_model(ModelConfig(model_path=str(directory), model_format="pytorch"))


def test_pickled_module_is_refused_unless_trusted(
    minilm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    from custom_modules import BagOfEmbeddings

    directory = _with_tokenizer(minilm_dir, tmp_path / "pickled")
    torch.save(BagOfEmbeddings(dim=8), str(directory / "model.bin"))
    config = {"model_path": str(directory), "model_format": "pytorch"}
    with pytest.raises(UntrustedModelFileError, match="arbitrary code"):
        CustomModelLoader().load_model(config)
    model = CustomModelLoader().load_model({**config, "trust_remote_code": True})
    assert model.encode(["trusted now"]).shape == (1, 8)


def test_torch_int8_quantisation_of_a_custom_module_stays_close_to_fp32(
    minilm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_texts: list[str]
) -> None:
    from safetensors.torch import save_file

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    from custom_modules import BagOfEmbeddings

    torch.manual_seed(1)
    directory = _with_tokenizer(minilm_dir, tmp_path / "bag-int8")
    save_file(BagOfEmbeddings(dim=64).state_dict(), str(directory / "weights.safetensors"))
    options = {"module_class": "custom_modules:BagOfEmbeddings", "module_kwargs": {"dim": 64}}
    base = {"model_path": str(directory), "model_format": "pytorch", "additional_config": options}
    loader = CustomModelLoader()
    fp32 = loader.load_model(base)
    int8 = loader.load_model({**base, "quantization": "int8"})
    assert (fp32.info.precision, int8.info.precision) == ("fp32", "int8")
    similarity = (fp32.encode(sample_texts) * int8.encode(sample_texts)).sum(1)
    assert similarity.min() >= 0.99


def test_a_directory_with_several_weight_files_must_name_one(minilm_dir: Path, tmp_path: Path) -> None:
    directory = _with_tokenizer(minilm_dir, tmp_path / "ambiguous")
    (directory / "a.safetensors").write_bytes(b"")
    (directory / "b.safetensors").write_bytes(b"")
    with pytest.raises(InvalidConfigError, match="exactly one weights file"):
        CustomModelLoader().load_model(ModelConfig(model_path=str(directory), model_format="pytorch"))
