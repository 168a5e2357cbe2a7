"""Training and evaluation of the expert heads (needs the `train` extra: scikit-learn)."""
