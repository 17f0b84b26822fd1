"""The SDP layer: conic backends (:mod:`certify.sdp.solvers`) and the data types every LMI is stated on
(:mod:`certify.sdp.types`).  It sits below :mod:`certify.snof` and :mod:`certify.criteria`, imports neither,
and imports CVXPY only when a problem is solved.
"""
