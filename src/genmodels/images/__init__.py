"""Image models of Fashion-MNIST: autoencoder, VAE and VAE-GAN, with their evaluation."""
