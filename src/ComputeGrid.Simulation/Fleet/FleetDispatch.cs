namespace ComputeGrid.Simulation.Fleet;

/// <summary>
/// What one policy did over a scenario: where each class's units ran and how many miners of each group ran at each
/// site, interval by interval. Real-time policies write whole numbers; the LP writes its fractional optimum. Either is
/// valued by <see cref="FleetAccounting.Evaluate"/>.
/// </summary>
public sealed class FleetDispatch
{
    /// <summary>An empty dispatch (nothing served, no miner running) shaped for <paramref name="scenario"/>.</summary>
    public FleetDispatch(FleetScenario scenario, string policy)
    {
        ArgumentNullException.ThrowIfNull(scenario);
        Policy = policy;
        int n = scenario.Count;
        Served = new double[scenario.Sites.Length][][];
        Running = new double[scenario.Sites.Length][][];
        for (int s = 0; s < scenario.Sites.Length; s++)
        {
            Served[s] = new double[scenario.Classes.Length][];
            for (int c = 0; c < scenario.Classes.Length; c++) Served[s][c] = new double[n];
            Running[s] = new double[scenario.Sites[s].Problem.Groups.Length][];
            for (int g = 0; g < Running[s].Length; g++) Running[s][g] = new double[n];
        }
    }

    /// <summary>The policy's name (for tables and JSON).</summary>
    public string Policy { get; }

    /// <summary>Units of class <c>c</c> served at site <c>s</c> in interval <c>t</c>: <c>Served[s][c][t]</c>.</summary>
    public double[][][] Served { get; }

    /// <summary>Miners of group <c>g</c> running at site <c>s</c> in interval <c>t</c>: <c>Running[s][g][t]</c>.</summary>
    public double[][][] Running { get; }

    /// <summary>The flexible units served at site <paramref name="s"/> in interval <paramref name="t"/>.</summary>
    public double UnitsAt(int s, int t)
    {
        double sum = 0;
        foreach (double[] row in Served[s]) sum += row[t];
        return sum;
    }
}
