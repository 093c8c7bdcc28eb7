"""The end-to-end demo, one module per stage; ``rag-factory demo`` runs them in order."""
