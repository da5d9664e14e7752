"""The Zaptec portal's exports: installation report and consumption export."""
