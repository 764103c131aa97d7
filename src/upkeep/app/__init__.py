"""Use cases the CLI, the API and the UI share: validate, audit, commit, one function each."""
