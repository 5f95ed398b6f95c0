"""Live backends: web3 for the chain venue (`chain.LiveChain`) and ccxt for CEX venues; each plugs into
its interface in live mode. Modules are imported by their full path."""
