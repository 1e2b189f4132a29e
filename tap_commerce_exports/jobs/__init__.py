"""The provider-agnostic export-job engine: create -> wait -> locate files -> download."""
