"""The tone conversation: our own two speakers (Customer and Support), the bursts they send and
the speech-like probe between them."""
