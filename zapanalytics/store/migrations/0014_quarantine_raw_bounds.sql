-- Quarantine keeps a bounded prefix of a raw payload; these columns describe the whole of it.
ALTER TABLE quarantine ADD COLUMN raw_size_bytes BIGINT;
ALTER TABLE quarantine ADD COLUMN raw_truncated BOOLEAN;
ALTER TABLE quarantine ADD COLUMN source_file VARCHAR;
