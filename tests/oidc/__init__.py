"""A local OpenID Connect issuer for the tests: real HTTP on loopback, real JOSE signatures."""
