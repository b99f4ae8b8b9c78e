"""A tiny app with a model, for the tests of streams that use the ORM."""
