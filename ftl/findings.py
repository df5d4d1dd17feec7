"The study's findings: answers computed from the records DataFrame and tables, never typed (placeholder, filled by the report issue)"
