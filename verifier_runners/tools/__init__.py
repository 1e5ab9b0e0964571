"""Small pipelines that external verifier configs call (never through a shell)."""
