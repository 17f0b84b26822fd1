"""Closed loops: LTI plants, saturated PI controllers, scaling, and their assembly into one SNOF."""
