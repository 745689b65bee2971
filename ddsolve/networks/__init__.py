"""Two-layer network physics: activations and their Gaussian (Hermite) integrals, the data
laws of Mei–Montanari–Nguyen (isotropic, anisotropic, teacher) with samplers, and the exact
reduced potential V and kernel ū of the distributional dynamics on (r), (r, a), (r₁, r₂)
and (s, u) coordinates."""
