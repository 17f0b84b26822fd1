"""Small loops shared by the loop, witness and report tests."""

from __future__ import annotations

from certify.networks import ElmanLayer, LinearHead, Network

#: a first-order lag behind a one-step delay, under a saturated velocity PI; ``kp = 50, ki = 20``
#: oscillates (a proved limit cycle), ``kp = 0.5, ki = 0.1`` settles
RELAY_LOOP = """
name = "oscillating-relay"
[plant]
A = [[0.9, 0.1], [0.0, 0.0]]
B = [[0.0], [1.0]]
C = [[1.0, 0.0]]
Ts = 0.5
u_min = [-1.0]
u_max = [1.0]
input_names = ["u"]
output_names = ["y"]
[network]
inputs = ["y:y"]
[controller]
kp = {kp}
ki = {ki}
actuator = "u"
reference = 0.3
"""


def bypass_net(gain: float = 1.0) -> Network:
    """Estimate = gain · measurement plus a small stable recurrent part (a linear bypass)."""
    return Network((ElmanLayer(W=[[0.1]], U=[[0.2]], b=[0.0]),), head=LinearHead(W=[[0.05]], b=[0.0], D=[[gain]]))
