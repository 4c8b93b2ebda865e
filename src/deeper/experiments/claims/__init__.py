"""The claims of the notes, one module per claim or small family of claims.

Every module registers its experiments with :func:`deeper.experiments.base.register`;
:func:`deeper.experiments.list_experiments` imports them all.
"""
