"""The model loader: four formats, pooling, quantisation, caching and clear errors, on the real MiniLM."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag_factory.errors import (
    InvalidArgumentError,
    InvalidConfigError,
    UnknownFormatError,
)
from rag_factory.models.embedding import CustomModelLoader, ModelConfig, ModelFormat, PoolingStrategy
from rag_factory.models.embedding.backends.base import EmbeddingModel
from rag_factory.models.embedding.static_int8 import is_static_int8

pytestmark = pytest.mark.slow

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def st_model(shared_loader: CustomModelLoader) -> EmbeddingModel:
    return shared_loader.load_model(ModelConfig(model_path=MINILM_ID, model_format="sentence_transformers"))


@pytest.fixture(scope="module")
def reference(st_model: EmbeddingModel, sample_texts: list[str]) -> np.ndarray:
    return st_model.encode(sample_texts)


def test_seed_api_loads_hub_id_offline_and_gives_384_dim_vectors(shared_loader: CustomModelLoader) -> None:
    config = ModelConfig(model_path=MINILM_ID, model_format="sentence_transformers")
    model = shared_loader.load_model(config)
    vectors = shared_loader.embed_texts(["Aspirin prevents heart attacks.", "BRCA1 and cancer"], model, config)
    assert len(vectors) == 2 and all(len(v) == 384 for v in vectors)
    assert all(isinstance(x, float) for x in vectors[0])
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)


def test_second_load_with_equal_config_returns_the_same_object(shared_loader: CustomModelLoader) -> None:
    first = shared_loader.load_model(ModelConfig(model_path=MINILM_ID, model_format="sentence_transformers"))
    hits_before = shared_loader.cache_info().hits
    second = shared_loader.load_model({"model_path": MINILM_ID, "model_format": "sentence_transformers"})
    assert second is first
    assert shared_loader.cache_info().hits == hits_before + 1


def test_huggingface_mean_pooling_reproduces_sentence_transformers(
    shared_loader: CustomModelLoader, sample_texts: list[str], reference: np.ndarray
) -> None:
    model = shared_loader.load_model(ModelConfig(model_path=MINILM_ID, model_format="huggingface"))
    assert model.info.backend == "huggingface"
    assert model.max_seq_length == 256  # taken from the model's sentence-transformers config
    assert cosines(model.encode(sample_texts), reference).min() >= 0.9999


@pytest.mark.parametrize("strategy", [PoolingStrategy.CLS, PoolingStrategy.MAX, PoolingStrategy.WEIGHTED_MEAN], ids=str)
def test_other_pooling_strategies_give_different_valid_vectors(
    shared_loader: CustomModelLoader,
    sample_texts: list[str],
    reference: np.ndarray,
    strategy: PoolingStrategy,
) -> None:
    model = shared_loader.load_model(
        ModelConfig(model_path=MINILM_ID, model_format="huggingface", pooling_strategy=strategy)
    )
    vectors = model.encode(sample_texts)
    assert vectors.shape == reference.shape
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert cosines(vectors, reference).mean() < 0.999  # really a different pooling


def test_normalisation_can_be_switched_off(shared_loader: CustomModelLoader, sample_texts: list[str]) -> None:
    model = shared_loader.load_model(
        ModelConfig(model_path=MINILM_ID, model_format="huggingface", normalize_embeddings=False)
    )
    norms = np.linalg.norm(model.encode(sample_texts[:5]), axis=1)
    assert not np.allclose(norms, 1.0, atol=1e-3)


@pytest.mark.parametrize("layout", ["flat", "sentence_transformers"], ids=["model.onnx", "onnx/model.onnx"])
def test_onnx_directory_matches_sentence_transformers(
    shared_loader: CustomModelLoader,
    onnx_export_dir: Path,
    minilm_dir: Path,
    tmp_path: Path,
    sample_texts: list[str],
    reference: np.ndarray,
    layout: str,
) -> None:
    if layout == "flat":
        path = onnx_export_dir
    else:  # the layout sentence-transformers itself uses: ST files at the root, graph under onnx/
        path = tmp_path / "st-layout"
        shutil.copytree(minilm_dir, path)
        (path / "onnx").mkdir()
        shutil.copy2(onnx_export_dir / "model.onnx", path / "onnx" / "model.onnx")
    model = shared_loader.load_model(ModelConfig(model_path=str(path), model_format=ModelFormat.ONNX))
    assert model.info.backend == "onnx" and model.info.precision == "fp32"
    assert cosines(model.encode(sample_texts), reference).min() >= 0.9999


def _cpu_has_vnni() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def _run_int8_graph_exactly(export_dir: Path, texts: list[str]) -> np.ndarray:
    """The int8 graph's own outputs: ONNX Runtime with graph optimisations off computes its
    quantise/dequantise steps in fp32, so no CPU's int8 kernels take part."""
    import onnxruntime as ort

    from rag_factory.models.embedding.pooling import l2_normalize, pool
    from rag_factory.models.embedding.tokenization import load_tokenizer, tokenize

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(export_dir / "model_int8.onnx"), options, providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}
    tokenizer = load_tokenizer(export_dir, 256)
    rows = []
    for text in texts:
        feeds = {k: v for k, v in tokenize(tokenizer, [text]).items() if k in inputs}
        tokens = session.run(None, feeds)[0].astype(np.float32)
        rows.append(pool(tokens, feeds["attention_mask"], PoolingStrategy.MEAN)[0])
    return l2_normalize(np.stack(rows))


def test_the_int8_graph_stays_close_to_fp32(
    onnx_export_dir: Path, sample_texts: list[str], reference: np.ndarray
) -> None:
    similarity = cosines(_run_int8_graph_exactly(onnx_export_dir, sample_texts), reference)
    real, degenerate = similarity[:-3], similarity[-3:]  # sample_texts ends with "", "x" and "a " * 2000
    assert real.mean() >= 0.995
    assert real.min() >= 0.99
    # Static int8 ranges come from calibration texts; inputs unlike any of them drift further.
    assert degenerate.min() >= 0.93


def test_int8_onnx_served_on_this_cpu_stays_close_to_fp32(
    shared_loader: CustomModelLoader, onnx_export_dir: Path, sample_texts: list[str], reference: np.ndarray
) -> None:
    model = shared_loader.load_model(
        ModelConfig(model_path=str(onnx_export_dir), model_format="onnx", quantization="int8")
    )
    assert model.info.precision == "int8"
    similarity = cosines(model.encode(sample_texts), reference)
    real, degenerate = similarity[:-3], similarity[-3:]
    # CPUs without VNNI (AVX2 only, e.g. EPYC Milan) add int8 products in 16 bits, which saturates:
    # the same graph then serves at about 0.9948 instead of 0.997 (README, "int8 is static"). The
    # graph's own quality is checked above, independently of the CPU; here the served vectors must
    # meet the product target (SPEC: cosine >= 0.99) everywhere, and the graph's figure with VNNI.
    assert real.mean() >= (0.995 if _cpu_has_vnni() else 0.99)
    assert real.min() >= 0.99
    assert degenerate.min() >= 0.93


def test_int8_for_a_sentence_transformers_model_is_served_by_its_static_int8_onnx_graph(
    shared_loader: CustomModelLoader, sample_texts: list[str], reference: np.ndarray
) -> None:
    model = shared_loader.load_model(
        ModelConfig(model_path=MINILM_ID, model_format="sentence_transformers", quantization="int8")
    )
    assert (model.info.backend, model.info.precision) == ("onnx", "int8")
    assert is_static_int8(Path(model.info.source))
    assert model.info.details["provider"] == "OpenVINO CPU"  # OpenVINO runs static int8 fastest on CPU
    assert cosines(model.encode(sample_texts), reference).mean() >= 0.99


def test_onnx_runtime_can_be_forced_for_the_int8_graph_and_agrees_with_openvino(
    onnx_export_dir: Path, sample_texts: list[str]
) -> None:
    loader = CustomModelLoader(cache_dir=onnx_export_dir.parent / "unused-cache")
    by_openvino = loader.load_model(
        ModelConfig(model_path=str(onnx_export_dir), model_format="onnx", quantization="int8")
    )
    by_ort = loader.load_model(
        ModelConfig(
            model_path=str(onnx_export_dir),
            model_format="onnx",
            quantization="int8",
            additional_config={"onnx_runtime": "onnxruntime"},
        )
    )
    assert by_ort.info.details["provider"] == "CPUExecutionProvider"
    assert cosines(by_ort.encode(sample_texts), by_openvino.encode(sample_texts)).min() >= 0.99


def test_openvino_overlapping_batches_return_each_text_in_its_place(
    shared_loader: CustomModelLoader, onnx_export_dir: Path, sample_texts: list[str]
) -> None:
    model = shared_loader.load_model(
        ModelConfig(model_path=str(onnx_export_dir), model_format="onnx", quantization="int8")
    )
    one_by_one = np.vstack([model.encode([text]) for text in sample_texts])
    overlapped = model.encode(sample_texts, batch_size=2)  # several batches in flight on two streams

    assert cosines(overlapped, one_by_one).min() >= 0.999


def test_a_dynamically_quantised_int8_graph_from_elsewhere_runs_on_onnx_runtime(
    onnx_export_dir: Path, tmp_path: Path, sample_texts: list[str], reference: np.ndarray
) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The layout optimum / sentence-transformers exports use for their dynamic int8 graphs.
    shipped = tmp_path / "shipped"
    shutil.copytree(onnx_export_dir, shipped, ignore=shutil.ignore_patterns("model_int8.onnx"))
    quantize_dynamic(
        shipped / "model.onnx", shipped / "model_qint8_avx512_vnni.onnx", per_channel=True, weight_type=QuantType.QInt8
    )

    model = CustomModelLoader(cache_dir=tmp_path / "cache").load_model(
        ModelConfig(model_path=str(shipped), model_format="onnx", quantization="int8")
    )
    assert Path(model.info.source).name == "model_qint8_avx512_vnni.onnx"  # used as shipped, not re-quantised
    assert not is_static_int8(Path(model.info.source))
    assert model.info.details["provider"] == "CPUExecutionProvider"
    assert cosines(model.encode(sample_texts), reference).mean() >= 0.99


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_onnx_threads_caps_the_engine_and_is_reported(
    onnx_export_dir: Path, tmp_path: Path, sample_texts: list[str], engine: str
) -> None:
    model = CustomModelLoader(cache_dir=tmp_path / "cache").load_model(
        ModelConfig(
            model_path=str(onnx_export_dir),
            model_format="onnx",
            quantization="int8",
            additional_config={"onnx_runtime": engine, "onnx_threads": 1},
        )
    )
    assert model.info.details["threads"] == "1"
    assert model.encode(sample_texts[:2]).shape == (2, 384)


@pytest.mark.parametrize("threads", [0, -2, "4", 1.5, True])
def test_a_bad_onnx_thread_count_is_refused(onnx_export_dir: Path, threads: object) -> None:
    with pytest.raises(InvalidConfigError, match="onnx_threads must be a positive integer"):
        CustomModelLoader().load_model(
            ModelConfig(
                model_path=str(onnx_export_dir), model_format="onnx", additional_config={"onnx_threads": threads}
            )
        )


def test_an_unknown_onnx_runtime_is_refused(onnx_export_dir: Path) -> None:
    with pytest.raises(InvalidConfigError, match="onnx_runtime"):
        CustomModelLoader().load_model(
            ModelConfig(model_path=str(onnx_export_dir), model_format="onnx", additional_config={"onnx_runtime": "tvm"})
        )


def test_onnx_int8_is_quantised_on_demand_when_only_fp32_exists(
    onnx_export_dir: Path, tmp_path: Path, sample_texts: list[str], reference: np.ndarray
) -> None:
    fp32_only = tmp_path / "fp32-only"
    shutil.copytree(onnx_export_dir, fp32_only, ignore=shutil.ignore_patterns("model_int8.onnx"))
    loader = CustomModelLoader(cache_dir=tmp_path / "cache")
    model = loader.load_model(ModelConfig(model_path=str(fp32_only), model_format="onnx", quantization="int8"))
    assert model.info.precision == "int8"
    assert Path(model.info.source).is_relative_to(tmp_path / "cache")
    assert cosines(model.encode(sample_texts), reference).mean() >= 0.99


def test_onnx_serving_path_never_imports_torch(onnx_export_dir: Path) -> None:
    script = (
        "import sys\n"
        "from rag_factory.models.embedding import CustomModelLoader, ModelConfig\n"
        f"m = CustomModelLoader().load_model(ModelConfig(model_path={str(onnx_export_dir)!r}, model_format='onnx'))\n"
        "assert m.encode(['hello']).shape == (1, 384)\n"
        "heavy = [name for name in ('torch', 'sentence_transformers', 'transformers') if name in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_long_texts_are_truncated_at_the_model_limit(shared_loader: CustomModelLoader, onnx_export_dir: Path) -> None:
    model = shared_loader.load_model(ModelConfig(model_path=str(onnx_export_dir), model_format="onnx"))
    long_text = "protein " * 5000
    # Past 256 tokens the text is cut, so extra words change nothing.
    a, b = model.encode([long_text, long_text + " kinase " * 100])
    assert float(a @ b) == pytest.approx(1.0, abs=1e-6)


def test_max_seq_length_can_be_lowered_but_never_raised(shared_loader: CustomModelLoader) -> None:
    lower = shared_loader.load_model(ModelConfig(model_path=MINILM_ID, model_format="huggingface", max_seq_length=64))
    higher = shared_loader.load_model(
        ModelConfig(model_path=MINILM_ID, model_format="huggingface", max_seq_length=4096)
    )
    assert (lower.max_seq_length, higher.max_seq_length) == (64, 256)


def test_fp16_on_cpu_is_ignored_and_reported_as_fp32(shared_loader: CustomModelLoader) -> None:
    model = shared_loader.load_model(
        ModelConfig(model_path=MINILM_ID, model_format="sentence_transformers", use_fp16=True)
    )
    assert model.info.precision == "fp32"


def test_empty_input_gives_an_empty_matrix(st_model: EmbeddingModel) -> None:
    assert st_model.encode([]).shape == (0, 384)


def test_non_string_input_is_rejected(st_model: EmbeddingModel) -> None:
    with pytest.raises(InvalidArgumentError, match=r"texts\[1\] is int"):
        st_model.encode(["ok", 3])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        ({"model_path": MINILM_ID, "model_format": "tensorflow"}, UnknownFormatError, "valid formats"),
        (
            {"model_path": MINILM_ID, "model_format": "onnx", "pooling_strategy": "median"},
            UnknownFormatError,
            "pooling",
        ),
        (
            {"model_path": MINILM_ID, "model_format": "onnx", "batch_size": 0},
            InvalidConfigError,
            "batch_size",
        ),
    ],
    ids=["unknown-format", "unknown-pooling", "zero-batch"],
)
def test_invalid_configs_raise_typed_errors(config: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        CustomModelLoader().load_model(config)


def test_onnx_format_on_a_directory_without_a_graph_is_refused(minilm_dir: Path) -> None:
    with pytest.raises(InvalidConfigError, match=r"model.onnx or onnx/model.onnx"):
        CustomModelLoader().load_model(ModelConfig(model_path=str(minilm_dir), model_format="onnx"))
