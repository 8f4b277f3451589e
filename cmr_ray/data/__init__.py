"""Data pipeline: index, plan, decode and write the clip store; read clips back.

Submodules that need Ray import it themselves; `schema` and `clips` are pure numpy.
"""
