"""Foundations every layer uses: budgets and threat balls, seeded generators, identities, atomic
writes, the component registry and the component base. Importing this package loads nothing heavy."""
