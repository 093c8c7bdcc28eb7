"""fine_tune behaviour: events, early stopping with the best checkpoint restored, cancellation, registration, CLI.

Registration is the publishing step after ``fine_tune``; the tests that register run both through
``fine_tune_and_publish``, as the CLI, the demo and the job do.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from training_helpers import fast_config

from rag_factory.errors import TrainingCancelledError
from rag_factory.jobs.publishing import fine_tune_and_publish
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.models.evaluation.evaluator import evaluate_detailed
from rag_factory.models.training.events import TrainingEvent
from rag_factory.models.training.registration import ensure_base_registered
from rag_factory.models.training.trainer import fine_tune

pytestmark = pytest.mark.slow
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def test_early_stopping_keeps_the_best_checkpoint_or_a_better_average(
    small_scifact: Path, training_work_dir: Path
) -> None:
    events: list[TrainingEvent] = []
    config = fast_config(
        small_scifact, training_work_dir, epochs=5, learning_rate=4e-4, early_stopping_patience=1,
        validation_corpus_size=10_000, output_dir=training_work_dir / "early", test_split=None,
    )  # fmt: skip
    result = fine_tune(config, on_event=events.append)
    scores = [e.metrics["ndcg@10"] for e in events if e.kind == "evaluation"]
    epochs = [e.epoch for e in events if e.kind == "evaluation"]
    if len(scores) < 5:  # stopped early: the last evaluation was worse than the best one
        assert scores[-1] < max(scores)
    best_epoch = epochs[scores.index(max(scores))]
    floor = max(scores) * (1 - config.averaging_tolerance)
    if len(result.averaged_epochs) > 1:
        # The mean of the plateau's checkpoints replaced the best one only because it validated at least as well.
        assert result.averaged_epochs == tuple(e for e, score in zip(epochs, scores, strict=True) if score >= floor)
        assert result.validation["ndcg@10"] >= max(scores)
    else:
        assert result.averaged_epochs == (best_epoch,)
        assert result.validation["ndcg@10"] == pytest.approx(max(scores))
    # The saved model really is the one reported: re-scoring it on the validation queries gives its score.
    from rag_factory.data.beir import load_beir
    from rag_factory.models.training.examples import from_beir
    from rag_factory.models.training.sentence_models import encoder_of, load_sentence_transformer
    from rag_factory.models.training.splits import split_by_query
    from rag_factory.retrieval.exact_search import search
    from rag_factory.retrieval.metrics import evaluate_run

    data = from_beir(load_beir(small_scifact))
    validation = split_by_query(data, config.validation_fraction, seed=config.seed)[1].positives()
    encode = encoder_of(load_sentence_transformer(result.output_dir, "cpu"), 128)
    found = search(encode([data.queries[q] for q in validation]), encode(list(data.corpus.values())),
                   list(validation), list(data.corpus))  # fmt: skip
    rescored = evaluate_run(found, {q: dict.fromkeys(d, 1) for q, d in validation.items()}, ["ndcg@10"])
    assert rescored["ndcg@10"] == pytest.approx(result.validation["ndcg@10"], abs=2e-3)


def test_events_report_steps_evaluations_and_done(
    small_scifact: Path, training_work_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    events: list[TrainingEvent] = []
    fine_tune(fast_config(small_scifact, training_work_dir, epochs=1, test_split=None), on_event=events.append)
    # Without show_progress, progress arrives only as events: the trainer prints no log dicts.
    assert "'loss'" not in capfd.readouterr().out
    kinds = [e.kind for e in events]
    assert kinds[-1] == "done" and "export" in kinds and "evaluation" in kinds
    steps = [e for e in events if e.kind == "step"]
    assert steps[-1].step == steps[-1].total_steps and steps[-1].eta_s == pytest.approx(0.0)


def test_cancelling_mid_training_raises_and_registers_nothing(small_scifact: Path, training_work_dir: Path) -> None:
    registry_path = training_work_dir / "cancel-registry"
    with ModelRegistry(registry_path) as registry:
        base = ensure_base_registered(registry, MINILM)
    cancel = threading.Event()

    def on_event(event: TrainingEvent) -> None:
        if event.kind == "step" and event.step >= 2:
            cancel.set()

    config = fast_config(small_scifact, training_work_dir, registry_path=registry_path, base_model=base.model_id,
                         output_dir=training_work_dir / "cancelled")  # fmt: skip
    with pytest.raises(TrainingCancelledError):
        fine_tune_and_publish(config, on_event=on_event, cancel=cancel)
    with ModelRegistry(registry_path) as registry:
        assert [m.model_id for m in registry.list_models()] == [base.model_id]
        assert "candidate" not in registry.aliases(base.metadata.model_name)
    assert not (training_work_dir / "cancelled").exists()


def test_a_packaged_hub_id_is_registered_once_as_the_lineage_root(tmp_path: Path) -> None:
    with ModelRegistry(tmp_path / "registry") as registry:
        base = ensure_base_registered(registry, MINILM)
        assert ensure_base_registered(registry, MINILM) == base  # found again, not registered twice
        assert base.ref == "minilm@1.0.0" and base.metadata.base_model == MINILM
        assert "base" in base.metadata.tags and len(registry.list_models()) == 1
        # Its size is recorded with the registration (MiniLM's weights and tokenizer: about 91 MB).
        assert 50 < registry.get_record(base.model_id).all_metrics()["model_size_mb"] < 200


def test_registration_records_lineage_alias_and_metrics(small_scifact: Path, training_work_dir: Path) -> None:
    registry_path = training_work_dir / "registry"
    with ModelRegistry(registry_path) as registry:
        base = ensure_base_registered(registry, MINILM)
    embeddings = training_work_dir / "registered-embeddings"
    config = fast_config(small_scifact, training_work_dir, epochs=1, registry_path=registry_path,
                         base_model=base.ref, output_dir=training_work_dir / "registered",
                         embedding_cache_dir=embeddings)  # fmt: skip
    events: list[TrainingEvent] = []
    result = fine_tune_and_publish(config, on_event=events.append)
    # The stream of one run: publishing comes before the final event.
    assert [e.kind for e in events][-2:] == ["registered", "done"]
    with ModelRegistry(registry_path) as registry:
        # The run's corpus vectors of the result wait in the evaluation cache: evaluating the
        # registered model on its own backend embeds only the queries, and scores as the run did.
        evaluated = evaluate_detailed(result.model_id or "", small_scifact, registry=registry, backend="native",
                                      cache_dir=embeddings)  # fmt: skip
        assert evaluated.report.corpus_cache == "hit"
        assert evaluated.report.metrics["ndcg@10"] == pytest.approx(result.test["ndcg@10"], abs=1e-6)  # type: ignore[index]
        # The base's are not there: the run embedded it at 128 tokens, and evaluation runs it at 256.
        assert len(list(embeddings.rglob("corpus.npy"))) == 1
        record = registry.get_record(str(result.model_id))
        assert record.metadata.version == "1.1.0" and record.metadata.model_name == base.metadata.model_name
        assert registry.ancestors(record.model_id) == [base.model_id]
        assert registry.get_alias(base.metadata.model_name, "candidate").model_id == record.model_id
        assert record.metadata.fine_tuned_on == small_scifact.name
        assert "strategy:mnrl" in record.metadata.tags
        metrics = record.all_metrics()
        assert metrics["ndcg_at_10"] == pytest.approx(result.test["ndcg@10"])  # type: ignore[index]
        for key in ("validation_ndcg@10", "base_test_ndcg@10", "test_ndcg@10_p_value", "model_size_mb",
                    "avg_inference_time_ms", "hp_learning_rate", "hp_attention_dropout",
                    "hp_averaging_tolerance", "checkpoints_averaged"):  # fmt: skip
            assert key in metrics
        artifact = registry.artifact_path(record.model_id)
        assert artifact is not None
        # Training ran without attention dropout, but the saved config keeps MiniLM's own rate.
        assert json.loads((artifact / "config.json").read_text())["attention_probs_dropout_prob"] == 0.1
        recorded = json.loads((artifact / "rag_factory_training.json").read_text())
        assert recorded["dataset"]["sha256"] and recorded["strategy"] == "mnrl"
        assert recorded["averaged_epochs"] == list(result.averaged_epochs) == [1.0]  # one epoch: nothing to average
        card = (artifact / "README.md").read_text()
    first_query = json.loads((small_scifact / "queries.jsonl").read_text().splitlines()[0])["text"]
    assert first_query not in card


def test_cli_trains_exports_and_registers_end_to_end(
    small_scifact: Path, training_work_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rag_factory.cli import main

    out = training_work_dir / "cli-model"
    registry_path = training_work_dir / "cli-registry"
    code = main(["train", "--data", str(small_scifact), "--epochs", "1", "--out", str(out), "--precision", "fp32",
                 "--registry", str(registry_path), "--work-dir", str(training_work_dir)])  # fmt: skip
    captured = capsys.readouterr()
    printed = captured.out
    assert code == 0
    # No training rows are sampled for a model-card widget (the trainer's default does that).
    assert "Computing widget examples" not in captured.err
    assert "test nDCG@10" in printed and "paired test" in printed and "as candidate" in printed
    assert "bf16=0" in printed and "weights: epoch 1, the best on validation" in printed
    assert (out / "modules.json").is_file()
    assert (out / "onnx" / "model.onnx").is_file() and (out / "onnx" / "model_int8.onnx").is_file()
    # The exports serve at the model's own token limit (MiniLM: 256), not at its 512 positions.
    assert json.loads((out / "onnx" / "rag_factory_onnx.json").read_text())["max_seq_length"] == 256
    with ModelRegistry(registry_path) as registry:
        candidate = registry.get_alias("minilm", "candidate")
        assert candidate.metadata.base_model == "minilm-1.0.0"
