using System.Globalization;
using Google.OrTools.ModelBuilder;
using MPSolverParameters = Google.OrTools.LinearSolver.MPSolverParameters;
using MpSolver = Google.OrTools.LinearSolver.Solver;
using MpVariable = Google.OrTools.LinearSolver.Variable;
using MpConstraint = Google.OrTools.LinearSolver.Constraint;

namespace ComputeGrid.Energy.Optimization;

/// <summary>The outcome of one solver run, in the solver's own words mapped to ours.</summary>
internal enum LpStatus { Optimal, Feasible, Infeasible, Unbounded, Failed }

/// <summary>
/// The few operations the site LP needs from a solver, over two OR-Tools front ends: the model builder (a flat
/// model proto built by index, the fastest way to build large models from C#: GLOP, PDLP, HiGHS, SCIP) and the
/// classic linear solver wrapper (for CLP and CBC, which the model builder cannot run). Variables and rows are
/// addressed by their index in order of creation; the objective is always maximized and has no constant.
/// </summary>
internal abstract class LpBackend : IDisposable
{
    /// <summary>The canonical lower-case name of the solver (as reported in results).</summary>
    public abstract string Name { get; }

    public abstract int VariableCount { get; }

    public abstract int RowCount { get; }

    public abstract int AddVar(double lower, double upper, double objective, bool integer);

    public abstract int AddRow(double lower, double upper);

    public abstract void AddTerm(int row, int variable, double coefficient);

    /// <summary>Replaces a row's bounds and sets (adds or overwrites) the given coefficients; other terms stay.</summary>
    public abstract void SetRowBounds(int row, double lower, double upper);

    public abstract void SetTerm(int row, int variable, double coefficient);

    /// <summary>Solves the model; <paramref name="mipRelativeGap"/> (integer models; null: the solver's default) is the relative gap between schedule and proved bound at which branch and bound may stop.</summary>
    public abstract LpStatus Solve(double timeLimitSeconds, double? mipRelativeGap = null);

    public abstract double Value(int variable);

    /// <summary>The dual value of a row in the last solution of a linear program (its sign follows the solver's convention).</summary>
    public abstract double Dual(int row);

    /// <summary>The objective of the last solution (without any constant).</summary>
    public abstract double Objective { get; }

    /// <summary>The best bound on the objective proved by the last solve (the objective itself for an LP).</summary>
    public abstract double BestBound { get; }

    public abstract string StatusText { get; }

    public abstract void Dispose();

    /// <summary>Creates the backend for a solver name (case-insensitive); throws when this build cannot run it.</summary>
    public static LpBackend Create(string solver, bool integer)
    {
        string s = solver.Trim().ToLowerInvariant();
        switch (s)
        {
            case "glop":
            case "pdlp":
                if (integer) throw new ArgumentException($"Solver '{solver}' solves linear programs only; integer schedules (RelaxStarts = false) need HIGHS, SCIP or CBC.");
                return new ModelBuilderBackend(s, s);
            case "highs":
                return new ModelBuilderBackend("highs", integer ? "highs" : "highs_lp");
            case "scip":
                return new ModelBuilderBackend("scip", "scip");
            case "clp":
                if (integer) throw new ArgumentException("Solver 'CLP' solves linear programs only; integer schedules (RelaxStarts = false) need HIGHS, SCIP or CBC.");
                return new LinearSolverBackend("clp", "CLP");
            case "cbc":
                return new LinearSolverBackend("cbc", "CBC");
            default:
                throw new ArgumentException($"Unknown solver '{solver}' (expected auto, glop, highs, clp, pdlp, scip or cbc).");
        }
    }
}

/// <summary>The model-builder front end: the model is a C++ proto filled by index (one native call per item).</summary>
internal sealed class ModelBuilderBackend : LpBackend
{
    private readonly ModelBuilderHelper _model = new();
    private readonly ModelSolverHelper _solver;
    private readonly string _name;
    private readonly string _solverType;

    public ModelBuilderBackend(string name, string solverType)
    {
        _name = name;
        _solverType = solverType;
        _solver = new ModelSolverHelper(solverType);
        if (!_solver.SolverIsSupported())
        {
            _solver.Dispose();
            _model.Dispose();
            throw new ArgumentException($"Solver '{name}' is not available in this OR-Tools build.");
        }
        _model.SetMaximize(true);
        _solver.EnableOutput(false); // HiGHS and SCIP must not print: the CLI's stdout carries results only
    }

    public override string Name => _name;

    public override int VariableCount => _model.VariablesCount();

    public override int RowCount => _model.ConstraintsCount();

    public override int AddVar(double lower, double upper, double objective, bool integer)
    {
        int v = _model.AddVar();
        _model.SetVarLowerBound(v, lower);
        _model.SetVarUpperBound(v, upper);
        if (objective != 0) _model.SetVarObjectiveCoefficient(v, objective);
        if (integer) _model.SetVarIntegrality(v, true);
        return v;
    }

    public override int AddRow(double lower, double upper)
    {
        int r = _model.AddLinearConstraint();
        _model.SetConstraintLowerBound(r, lower);
        _model.SetConstraintUpperBound(r, upper);
        return r;
    }

    public override void AddTerm(int row, int variable, double coefficient) => _model.AddConstraintTerm(row, variable, coefficient);

    public override void SetRowBounds(int row, double lower, double upper)
    {
        _model.SetConstraintLowerBound(row, lower);
        _model.SetConstraintUpperBound(row, upper);
    }

    public override void SetTerm(int row, int variable, double coefficient) => _model.SetConstraintCoefficient(row, variable, coefficient);

    public override LpStatus Solve(double timeLimitSeconds, double? mipRelativeGap = null)
    {
        _solver.SetTimeLimitInSeconds(timeLimitSeconds);
        string gap = mipRelativeGap is { } g ? g.ToString("R", CultureInfo.InvariantCulture) : "";
        string? parameters = _solverType switch
        {
            // Dual simplex without presolve: exact, and the fastest on the site LP (measured: ~1 s for a year of
            // 15-minute intervals, ~0.5 ms for a day, against 1.6 s / 2.5 ms with GLOP's defaults).
            "glop" => "use_dual_simplex: true use_preprocessing: false",
            // output_flag first: HiGHS prints its banner on the first option it is given while output is on.
            "highs_lp" => "output_flag=false,solver=simplex",
            "highs" => mipRelativeGap is null ? "output_flag=false" : "output_flag=false,mip_rel_gap=" + gap,
            "scip" => mipRelativeGap is null ? null : "limits/gap = " + gap,
            _ => null,
        };
        if (parameters is not null) _solver.SetSolverSpecificParameters(parameters);
        _solver.Solve(_model);
        if (!_solver.HasResponse()) return LpStatus.Failed;
        return _solver.Status() switch
        {
            SolveStatus.OPTIMAL => LpStatus.Optimal,
            SolveStatus.FEASIBLE => LpStatus.Feasible,
            SolveStatus.INFEASIBLE => LpStatus.Infeasible,
            SolveStatus.UNBOUNDED => LpStatus.Unbounded,
            _ => LpStatus.Failed,
        };
    }

    public override double Value(int variable) => _solver.VariableValue(variable);

    public override double Dual(int row) => _solver.DualValue(row);

    public override double Objective => _solver.ObjectiveValue();

    public override double BestBound => _solver.BestObjectiveBound();

    public override string StatusText
    {
        get
        {
            string text = _solver.StatusString();
            return $"{_solver.Status()}{(string.IsNullOrEmpty(text) ? "" : ": " + text)}";
        }
    }

    public override void Dispose()
    {
        _solver.Dispose();
        _model.Dispose();
    }
}

/// <summary>The classic linear-solver front end (CLP, CBC): one wrapper object per variable and row.</summary>
internal sealed class LinearSolverBackend : LpBackend
{
    private readonly MpSolver _solver;
    private readonly List<MpVariable> _vars = [];
    private readonly List<MpConstraint> _rows = [];
    private readonly string _name;
    private Google.OrTools.LinearSolver.Solver.ResultStatus _status = Google.OrTools.LinearSolver.Solver.ResultStatus.NOT_SOLVED;

    public LinearSolverBackend(string name, string solverId)
    {
        _name = name;
        _solver = MpSolver.CreateSolver(solverId) ?? throw new ArgumentException($"Solver '{name}' is not available in this OR-Tools build.");
        _solver.SuppressOutput();
        _solver.Objective().SetMaximization();
    }

    public override string Name => _name;

    public override int VariableCount => _vars.Count;

    public override int RowCount => _rows.Count;

    public override int AddVar(double lower, double upper, double objective, bool integer)
    {
        MpVariable v = _solver.MakeVar(lower, upper, integer, "");
        if (objective != 0) _solver.Objective().SetCoefficient(v, objective);
        _vars.Add(v);
        return _vars.Count - 1;
    }

    public override int AddRow(double lower, double upper)
    {
        _rows.Add(_solver.MakeConstraint(lower, upper));
        return _rows.Count - 1;
    }

    public override void AddTerm(int row, int variable, double coefficient) => _rows[row].SetCoefficient(_vars[variable], coefficient);

    public override void SetRowBounds(int row, double lower, double upper) => _rows[row].SetBounds(lower, upper);

    public override void SetTerm(int row, int variable, double coefficient) => _rows[row].SetCoefficient(_vars[variable], coefficient);

    public override LpStatus Solve(double timeLimitSeconds, double? mipRelativeGap = null)
    {
        _solver.SetTimeLimit((long)Math.Ceiling(timeLimitSeconds * 1000));
        if (mipRelativeGap is { } gap)
        {
            using var parameters = new MPSolverParameters();
            parameters.SetDoubleParam(MPSolverParameters.DoubleParam.RELATIVE_MIP_GAP, gap);
            _status = _solver.Solve(parameters);
        }
        else
        {
            _status = _solver.Solve();
        }
        return _status switch
        {
            MpSolver.ResultStatus.OPTIMAL => LpStatus.Optimal,
            MpSolver.ResultStatus.FEASIBLE => LpStatus.Feasible,
            MpSolver.ResultStatus.INFEASIBLE => LpStatus.Infeasible,
            MpSolver.ResultStatus.UNBOUNDED => LpStatus.Unbounded,
            _ => LpStatus.Failed,
        };
    }

    public override double Value(int variable) => _vars[variable].SolutionValue();

    public override double Dual(int row) => _rows[row].DualValue();

    public override double Objective => _solver.Objective().Value();

    public override double BestBound => _solver.Objective().BestBound();

    public override string StatusText => _status.ToString();

    public override void Dispose() => _solver.Dispose();
}
