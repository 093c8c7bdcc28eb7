"""Demo stage: an alias moves under a built index; queries keep its version until it is re-embedded."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rag_factory.demo.context import DemoContext, section

if TYPE_CHECKING:
    from plugin import RagFactoryEmbedding

QUERY_ID_COUNT = 3


def _served(embedding: RagFactoryEmbedding) -> str:
    served = embedding.last_served_by
    return f"{served.model_id} v{served.version}" if served else "?"


def move_alias_and_reembed(ctx: DemoContext) -> None:
    """Move minilm@staging to the fine-tuned version, show the index stays pinned, re-embed it, switch."""
    from plugin import PinnedIndex, build_pinned_index, find_stale_nodes

    section("8. Moving an index to a new version: the alias moves, the index is re-embedded, then switched")
    test = ctx.dataset.split("test")
    queries = [ctx.dataset.queries[qid] for qid in list(test)[:QUERY_ID_COUNT]]
    old_embedding = PinnedIndex.from_index(ctx.index).embed_model  # stage 5's pinned RagFactoryEmbedding
    ctx.registry.set_alias("minilm", "staging", ctx.models["fine_tuned"])
    print(f"minilm@staging now -> {ctx.registry.get_alias('minilm', 'staging').model_id} (moved by the operator)")
    for query in queries:
        ctx.index.as_retriever(similarity_top_k=5).retrieve(query)
        print(f"  old index, query embedded by {_served(old_embedding)}: still the index's own vector space")
    new_embedding = old_embedding.repinned()
    stale = find_stale_nodes(list(ctx.index.docstore.docs.values()), new_embedding.current_model_id())
    print(f"  {len(stale)} of {len(ctx.nodes)} nodes are stale for {new_embedding.pinned_model()}")
    started = time.perf_counter()
    rebuilt = build_pinned_index(
        stale, new_embedding, batch_size=100,
        progress=lambda done, total: print(f"  re-embedding: {done}/{total} nodes"),
    )  # fmt: skip
    print(f"  new index built in {time.perf_counter() - started:.1f} s; the application switches to it")
    ctx.index = rebuilt.index
    for query in queries:
        ctx.index.as_retriever(similarity_top_k=5).retrieve(query)
        print(f"  new index, query embedded by {_served(new_embedding)}")
