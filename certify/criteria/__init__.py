"""Stability criteria.

``lmi`` (Kim-type Luré–Postnikov LMI with circle/Popov special cases), ``solvers`` (backend registry
over CVXPY), ``validate`` (solver-independent float64 re-check of certificates); ``diss`` holds the
closed-form δISS/ISS tests.  Submodules are imported on demand so that ``import certify.criteria``
stays cheap (no CVXPY import).
"""
