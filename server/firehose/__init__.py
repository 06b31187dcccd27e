"""Receiving side of mParticle's Firehose protocol."""
