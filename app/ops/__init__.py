"""Operations as library functions: export, import, backfill, check, backup, maintenance, rollback."""
