namespace ComputeGrid.Simulation;

/// <summary>A miner model's nameplate: hashrate at its nominal power, and the range its power target may take.</summary>
public sealed record MinerModel
{
    /// <summary>Creates a model.</summary>
    /// <param name="name">The model name, e.g. <c>S21</c>.</param>
    /// <param name="terahash">Nominal hashrate in TH/s.</param>
    /// <param name="watts">Nominal power in W.</param>
    public MinerModel(string name, double terahash, double watts)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (!double.IsFinite(terahash) || terahash <= 0) throw new ArgumentOutOfRangeException(nameof(terahash));
        if (!double.IsFinite(watts) || watts <= 0) throw new ArgumentOutOfRangeException(nameof(watts));
        Name = name;
        TerahashPerSecond = terahash;
        Watts = watts;
    }

    /// <summary>The model name.</summary>
    public string Name { get; }

    /// <summary>Nominal hashrate, TH/s.</summary>
    public double TerahashPerSecond { get; }

    /// <summary>Nominal power, W.</summary>
    public double Watts { get; }

    /// <summary>The lowest power target, as a fraction of <see cref="Watts"/>. Default 0.5.</summary>
    public double MinPowerFraction { get; init; } = 0.5;

    /// <summary>The highest power target, as a fraction of <see cref="Watts"/>. Default 1.1.</summary>
    public double MaxPowerFraction { get; init; } = 1.1;

    /// <summary>Efficiency at nominal power, J/TH.</summary>
    public double JoulesPerTerahash => Watts / TerahashPerSecond;

    /// <summary>A power target clamped to the model's range, W.</summary>
    public double ClampPower(double watts) => Math.Clamp(watts, Watts * MinPowerFraction, Watts * MaxPowerFraction);
}
