"""One conversation's stored state, explained."""
