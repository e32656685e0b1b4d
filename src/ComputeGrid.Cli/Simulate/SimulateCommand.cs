using System.CommandLine;
using System.Globalization;
using ComputeGrid.Server.WholeSystem;

namespace ComputeGrid.Cli.Simulate;

/// <summary>
/// <c>computegrid simulate --seed N [--hours H] [--faults LIST]</c>: the seeded whole-system simulation
/// (<c>src/ComputeGrid.Server/WholeSystem/</c>). Exit 0 when every invariant held after every step, 1 when one broke (the
/// seed, the invariant and the replay command on stderr), 2 for bad input. The last stdout line is the JSON object.
/// </summary>
internal static class SimulateCommand
{
    public static Command Create()
    {
        var seed = new Option<long?>("--seed") { Description = "The run's seed: the same seed replays the same run (same final_state_hash)." };
        var hours = new Option<double>("--hours") { Description = $"Simulated hours (above 0, at most {SimulationOptions.HoursMax}).", DefaultValueFactory = _ => 2 };
        var faults = new Option<string>("--faults")
        {
            Description = $"Faults to inject, comma-separated: all, none (the default), or {string.Join(", ", SimFaults.All.Select(SimFaults.Name))}.",
            DefaultValueFactory = _ => "none",
        };
        var keep = new Option<bool>("--keep") { Description = "Keep the run's folder (ledger log, journal, stores) and print where it is." };
        var command = new Command("simulate", "Run the whole system (ledger, exchange, paid inference, shares, a hybrid site and its miners) under one simulated clock and one seed, with faults, checking every invariant after every step.")
        {
            seed, hours, faults, keep,
        };
        command.SetAction(async (pr, ct) => await RunAsync(pr.GetValue(seed), pr.GetValue(hours), pr.GetValue(faults)!, pr.GetValue(keep), ct));
        return command;
    }

    private static async Task<int> RunAsync(long? seed, double hours, string faultList, bool keep, CancellationToken ct)
    {
        if (seed is not { } s) return CliDefaults.Fail("simulate needs --seed N");
        if (!SimFaults.TryParse(faultList, out IReadOnlySet<SimFaultKind> kinds, out string? faultError)) return CliDefaults.Fail("--faults: " + faultError);
        var options = new SimulationOptions { Seed = s, Hours = hours, Faults = kinds, KeepFiles = keep, Bug = SimulationOptions.BugFromEnvironment() };
        if (options.Validate() is { } error) return CliDefaults.Fail(error);
        string faultsText = kinds.Count == 0 ? "none" : kinds.Count == SimFaults.All.Count ? "all" : string.Join(",", kinds.Order().Select(SimFaults.Name));
        string replay = string.Create(CultureInfo.InvariantCulture, $"computegrid simulate --seed {s} --hours {hours} --faults {faultsText}");
        Console.Out.WriteLine($"simulate: seed {s}, {hours.ToString(CultureInfo.InvariantCulture)} simulated hours, faults {faultsText}");
        SimulationResult r = await WholeSystemSimulation.RunAsync(options, ct);
        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"simulate: {r.Steps} steps, {r.Requests} requests ({r.Answered} answered), {r.Orders} orders, {r.Leases} leases, {r.Restarts} restarts, {r.InvariantChecks} invariant checks, {r.SimulatedHours / Math.Max(1e-9, r.WallSeconds):0.0} simulated hours per second"));
        if (r.KeptDirectory is { } kept) Console.Out.WriteLine($"simulate: files kept in {kept}");
        Console.Out.WriteLine(r.ToJson());
        if (r.InvariantsOk) return 0;
        Console.Error.WriteLine($"simulate: invariant broken with seed {s}: {r.Violation} (replay: {replay})");
        return 1;
    }
}
