"""Generated from proto/atelier/v1 by `make proto`. Do not edit."""
