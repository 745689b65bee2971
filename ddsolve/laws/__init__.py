"""Laws of the parameters: the initial laws of a run (by name, for the ``[initial]``
section) and the exact solutions used by tests, examples and initial data (Gaussian and
chi cell averages, Ornstein–Uhlenbeck and Curie–Weiss moments)."""
