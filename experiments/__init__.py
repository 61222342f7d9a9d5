"""The experiment YAMLs that ship with evofool (installed as ``evofool.experiments``):
``evofool experiments`` lists them; see README.md here for their keys."""
