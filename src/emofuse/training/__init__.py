"""Training and evaluation (needs the ``train`` extra: scikit-learn; fusion networks also need torch).

``config`` (the TOML layer) -> ``data`` (labelled items and cached features) -> ``protocols`` (splits) ->
``linear`` (heads) or ``networks`` (the fusion-network loop) -> ``metrics`` -> ``run`` (the whole run,
``emofuse train`` / ``evaluate``) -> ``report`` (report.md and plots). Analysis code never imports this
package; what both sides share lives outside it (``emofuse.checkpoints``, ``emofuse.extractors``).
"""
