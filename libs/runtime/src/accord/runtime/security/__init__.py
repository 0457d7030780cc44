"""Authentication and authorisation of Accord's own APIs."""
