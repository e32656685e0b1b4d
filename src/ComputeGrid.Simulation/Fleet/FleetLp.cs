using System.Diagnostics;
using Google.OrTools.ModelBuilder;

namespace ComputeGrid.Simulation.Fleet;

/// <summary>The fleet LP's answer: its schedule and what the solver proved.</summary>
/// <param name="Dispatch">The optimal schedule (fractional for the LP), to be valued by <see cref="FleetAccounting"/>.</param>
/// <param name="ObjectiveUsd">The solver's optimum, USD, constants included: for the LP a bound on every legal dispatch.</param>
/// <param name="Solver">The solver (highs by default for the LP, scip for the integer model).</param>
/// <param name="Variables">Columns of the model.</param>
/// <param name="Constraints">Rows of the model.</param>
/// <param name="Seconds">Build and solve time.</param>
public sealed record FleetLpResult(FleetDispatch Dispatch, double ObjectiveUsd, string Solver, int Variables, int Constraints, double Seconds);

/// <summary>
/// The fleet's perfect-foresight optimum: one linear program over every site, interval, miner group and demand class that
/// co-optimises where flexible units run and when miners run, knowing every price, hashprice, peak-charge hour and demand.
/// </summary>
/// <remarks>
/// <para>Solved with HiGHS's dual simplex by default. <b>Variables</b> (per site <c>s</c>, interval <c>t</c>): <c>x[c,s,t] ∈ [0, D[c,t]]</c> units of class <c>c</c>
/// served at <c>s</c> — only where the round trip is within the class's bound (<see cref="FleetScenario.Eligible"/>);
/// <c>r[s,g,t] ∈ [0, Count_g]</c> miners running (0 in an emergency); <c>st[s,g,t] ≥ max(0, r[t] − r[t−1])</c> starts.</para>
/// <para><b>Rows</b>: demand <c>Σ_s x[c,s,t] ≤ D[c,t]</c>; node capacity <c>Σ_c x[c,s,t] ≤ cap_s</c>; interconnect
/// <c>PUE·(firm + UnitItKw·Σ_c x + Σ_g W_g·r/1000) ≤ limit</c>; miner ramp-up <c>Σ_g W_g·(r[t] − r[t−1])/1000 ≤ RU</c>.
/// The ramp-down limit is left out (a relaxation: the shipped sites have none, and the accounting excuses drops forced
/// by the interconnect), so the optimum stays an upper bound.</para>
/// <para><b>Objective</b>: exactly the accounting's formulas (<see cref="FleetAccounting"/>, <c>SiteAccumulator</c>), which
/// are linear in these variables — unit revenue, mining revenue net of the restart's lost hashing, minus energy, the
/// peak charge and wear. A start's coefficient is ≤ 0, so at the optimum <c>st = max(0, r − r₋₁)</c>, the accounting's
/// starts. Every legal real-time dispatch (whole miners, within the limits) is a feasible point, so the LP's optimum
/// bounds each policy's value (to the accounting's rounding: five amounts per site-interval, each to ½ micro-dollar).</para>
/// <para><c>integer: true</c> makes miners and units whole (SCIP): the exact optimum over whole-miner, whole-unit
/// dispatches, for small instances and the differential test against enumeration.</para>
/// </remarks>
public static class FleetLp
{
    /// <summary>Solves the fleet's optimum over <paramref name="scenario"/>.</summary>
    /// <param name="scenario">The fleet.</param>
    /// <param name="integer">Whole miners and units (a MIP) instead of the linear relaxation.</param>
    /// <param name="timeLimitSeconds">The solver's time limit.</param>
    /// <exception cref="InvalidOperationException">The solver found no optimum.</exception>
    /// <param name="solverName">The LP solver: <c>highs</c> (dual simplex; on the bench's week 3.9 s against GLOP's 8.7 s),
    /// <c>glop</c> (dual simplex, no presolve) or <c>pdlp</c> (approximate: no proof); the integer model always uses SCIP.</param>
    public static FleetLpResult Solve(FleetScenario scenario, bool integer = false, double timeLimitSeconds = 600, string solverName = "highs")
    {
        ArgumentNullException.ThrowIfNull(scenario);
        scenario.Validate();
        var clock = Stopwatch.StartNew();
        if (integer) solverName = "scip";
        using var model = new ModelBuilderHelper();
        using var backend = new ModelSolverHelper(solverName == "highs" ? "highs_lp" : solverName);
        if (!backend.SolverIsSupported()) throw new InvalidOperationException($"Solver {solverName} is not in this OR-Tools build.");
        backend.EnableOutput(false);
        model.SetMaximize(true);

        int n = scenario.Count, sites = scenario.Sites.Length, classes = scenario.Classes.Length;
        double h = scenario.IntervalMinutes / 60.0, constant = 0;
        var x = new int[sites][][];
        var r = new int[sites][][];
        var st = new int[sites][][];
        for (int s = 0; s < sites; s++)
        {
            FleetSite site = scenario.Sites[s];
            var p = site.Problem;
            int groups = p.Groups.Length;
            double startFraction = Energy.Dispatch.IntervalEconomics.StartFraction(p.RestartMinutes, p.IntervalMinutes);
            x[s] = new int[classes][];
            for (int c = 0; c < classes; c++) x[s][c] = new int[n];
            r[s] = new int[groups][];
            st[s] = new int[groups][];
            for (int g = 0; g < groups; g++)
            {
                r[s][g] = new int[n];
                st[s][g] = new int[n];
            }
            for (int t = 0; t < n; t++)
            {
                // USD per facility kW drawn through the interval: energy at the price, and the peak charge's weight.
                double perFacilityKw = p.PriceUsdPerMwh[t] * h / 1000.0 + p.PeakChargeUsdPerKw[t];
                double firmKw = p.AiItKw[t];
                constant += p.AiRevenueUsd[t] - perFacilityKw * p.Pue * firmKw;
                double mining = p.HashpriceUsdPerThDay[t] * h / 24.0 * (1 - p.PoolFeeFraction);

                int interconnect = Row(model, double.NegativeInfinity, p.InterconnectKw - p.Pue * firmKw);
                int capacity = Row(model, double.NegativeInfinity, site.CapacityUnits);
                for (int c = 0; c < classes; c++)
                {
                    int demand = scenario.Demand[c][t];
                    if (demand == 0 || !scenario.Eligible(c, s)) { x[s][c][t] = -1; continue; }
                    int v = Var(model, 0, demand, scenario.UnitRevenueUsd - perFacilityKw * p.Pue * scenario.UnitItKw, integer);
                    x[s][c][t] = v;
                    model.AddConstraintTerm(interconnect, v, p.Pue * scenario.UnitItKw);
                    model.AddConstraintTerm(capacity, v, 1);
                }
                int ramp = double.IsFinite(p.RampUpKwPerInterval) ? Row(model, double.NegativeInfinity, p.RampUpKwPerInterval) : -1;
                for (int g = 0; g < groups; g++)
                {
                    var grp = p.Groups[g];
                    double kwEach = grp.WattsEach / 1000.0;
                    int run = Var(model, 0, p.Emergency[t] ? 0 : grp.Count,
                        mining * grp.TerahashEach - perFacilityKw * p.Pue * kwEach, integer);
                    int start = Var(model, 0, grp.Count, -mining * grp.TerahashEach * startFraction - p.RestartWearUsd, false);
                    r[s][g][t] = run;
                    st[s][g][t] = start;
                    model.AddConstraintTerm(interconnect, run, p.Pue * kwEach);
                    // st − r[t] + r[t−1] ≥ 0 (r[−1] is the initial state, moved to the bound).
                    int startRow = Row(model, t == 0 ? -p.InitialRunning[g] : 0, double.PositiveInfinity);
                    model.AddConstraintTerm(startRow, start, 1);
                    model.AddConstraintTerm(startRow, run, -1);
                    if (t > 0) model.AddConstraintTerm(startRow, r[s][g][t - 1], 1);
                    if (ramp >= 0)
                    {
                        model.AddConstraintTerm(ramp, run, kwEach);
                        if (t > 0) model.AddConstraintTerm(ramp, r[s][g][t - 1], -kwEach);
                    }
                }
                if (ramp >= 0 && t == 0)
                {
                    double initialKw = 0;
                    for (int g = 0; g < groups; g++) initialKw += p.InitialRunning[g] * p.Groups[g].WattsEach / 1000.0;
                    model.SetConstraintUpperBound(ramp, p.RampUpKwPerInterval + initialKw);
                }
            }
        }
        for (int c = 0; c < classes; c++)
            for (int t = 0; t < n; t++)
            {
                int demand = scenario.Demand[c][t];
                if (demand == 0) continue;
                int row = Row(model, double.NegativeInfinity, demand);
                for (int s = 0; s < sites; s++)
                    if (x[s][c][t] >= 0) model.AddConstraintTerm(row, x[s][c][t], 1);
            }

        int variables = model.VariablesCount(), constraints = model.ConstraintsCount();
        backend.SetTimeLimitInSeconds(timeLimitSeconds);
        // Dual simplex (GLOP without presolve, the fastest GLOP setting on the site LP: Optimization/README.md); SCIP's gap closed fully.
        string? parameters = solverName switch
        {
            "scip" => "limits/gap = 0",
            "glop" => "use_dual_simplex: true use_preprocessing: false",
            "highs" => "output_flag=false,solver=simplex",
            _ => null,
        };
        if (parameters is not null) backend.SetSolverSpecificParameters(parameters);
        backend.Solve(model);
        if (!backend.HasResponse() || backend.Status() != SolveStatus.OPTIMAL)
            throw new InvalidOperationException($"The fleet LP was not solved to optimality: {(backend.HasResponse() ? backend.Status().ToString() : "no response")} {backend.StatusString()}");

        var dispatch = new FleetDispatch(scenario, integer ? "optimum (integer)" : "optimum (LP)");
        for (int s = 0; s < sites; s++)
        {
            for (int c = 0; c < classes; c++)
                for (int t = 0; t < n; t++)
                    if (x[s][c][t] >= 0) dispatch.Served[s][c][t] = Clean(backend.VariableValue(x[s][c][t]), integer);
            for (int g = 0; g < r[s].Length; g++)
                for (int t = 0; t < n; t++) dispatch.Running[s][g][t] = Clean(backend.VariableValue(r[s][g][t]), integer);
        }
        return new FleetLpResult(dispatch, backend.ObjectiveValue() + constant, solverName, variables, constraints, clock.Elapsed.TotalSeconds);
    }

    // Solvers return values within their tolerance: a whole number stays whole, a tiny negative is zero.
    private static double Clean(double v, bool integer) => integer ? Math.Round(v) : Math.Max(0, v);

    private static int Var(ModelBuilderHelper model, double lower, double upper, double objective, bool integer)
    {
        int v = model.AddVar();
        model.SetVarLowerBound(v, lower);
        model.SetVarUpperBound(v, upper);
        if (objective != 0) model.SetVarObjectiveCoefficient(v, objective);
        if (integer) model.SetVarIntegrality(v, true);
        return v;
    }

    private static int Row(ModelBuilderHelper model, double lower, double upper)
    {
        int row = model.AddLinearConstraint();
        model.SetConstraintLowerBound(row, lower);
        model.SetConstraintUpperBound(row, upper);
        return row;
    }
}
