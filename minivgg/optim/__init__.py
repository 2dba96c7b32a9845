"""The optimisers over the pixels: ``drivers`` (scipy's L-BFGS-B, the engine's L-BFGS, Adam; the one
place that converts between the optimiser's flat vector and the image) and ``lbfgs`` (projected
L-BFGS on any array module).
"""
