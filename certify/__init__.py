"""certify: stability certificates for trained recurrent networks and the control loops they sit in."""

__version__ = "0.1.0"
