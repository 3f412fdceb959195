"""NetworkPolicy semantics: parsing, the evaluator, rule usage, `flowpol verify`."""
