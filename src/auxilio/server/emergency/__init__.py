"""Emergency mode (R18): declare, lift and read an organisation's emergency (docs/emergency.md)."""
