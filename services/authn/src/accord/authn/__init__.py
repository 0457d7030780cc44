"""Accord authn: MFA enrolment, risk-driven lockout, Shared Signals."""
