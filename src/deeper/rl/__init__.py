"""Reinforcement learning pieces: environments, Q-networks, the replay buffer and DQN's arithmetic.

- :mod:`deeper.rl.envs`: environments by name (gymnasium's CartPole and friends,
  MinAtar's games from the pixels, the Arcade Learning Environment when ``ale-py`` is
  installed, and a tiny built-in corridor ``chain-N``), one interface, episodes
  seeded one by one so a run can rebuild the environment exactly on resume;
- :mod:`deeper.rl.nets`: Q-networks (an MLP for state vectors, the MinAtar network,
  the DQN paper's convolutional network for 84x84 frames), optionally dueling;
- :mod:`deeper.rl.replay`: the experience-replay ring buffer on the device (uniform or
  prioritized sampling);
- :mod:`deeper.rl.dqn`: the TD target (DQN and Double DQN), the epsilon schedule and
  target-network synchronisation.

Nothing here imports the training engine: :mod:`deeper.tasks.rl` puts these pieces on it.
"""
