"""Readers and writers: MOTChallenge files, frame sources, the decoded-frame cache."""
