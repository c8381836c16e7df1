"""Stage `download` (workflow/rules/download.smk): getting the public data.

- `fetch`: verified, resumable HTTP(S) downloads (`visdial-lg download`)
- `checksum_lock`: trust on first use for sources without a published sha256
- `archive`: safe zip extraction with a manifest (`visdial-lg unzip`)
"""
