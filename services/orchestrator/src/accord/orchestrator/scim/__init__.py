"""The inbound SCIM 2.0 server: identity providers and HR systems push identities here."""
