"""Use cases: one function each, one commit each. They take the actor first."""
