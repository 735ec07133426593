"""The experiment layer: experiment files run as Ray Tune experiments, reports from their
trial summaries. It sits on top of the rest of ``policies`` (nothing there imports it).

* :mod:`~policies.experiments.spec`: the experiment file, validated;
* :mod:`~policies.experiments.kinds`: what a trial runs (``rllib``, ``fen``, ...);
* :mod:`~policies.experiments.trial`: one trial on a Ray worker;
* :mod:`~policies.experiments.runner`: the Tune experiment (run, resume);
* :mod:`~policies.experiments.report`: the study's report from its summaries;
* :mod:`~policies.experiments.cli`: ``scripts/run_experiment.py``.
"""
