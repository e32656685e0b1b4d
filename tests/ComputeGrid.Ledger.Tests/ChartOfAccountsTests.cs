using ComputeGrid.Core;
using CsCheck;

namespace ComputeGrid.Ledger.Tests;

/// <summary>
/// The chart of accounts: every code declared once with one meaning, above the client space; ids of the reserved space
/// composed from (code or transfer space, qualifier, number) so that different inputs never give the same id, decoded
/// back exactly, told apart from client-space ids, and owned by the principal they name (only principal accounts).
/// </summary>
public class ChartOfAccountsTests
{
    /// <summary>The first id of the reserved space (2^127) and the last of the client space.</summary>
    private static readonly UInt128 FirstReserved = UInt128.One << 127, LastClient = (UInt128.One << 127) - 1;

    /// <summary>
    /// Each name of an enum with its value. C# lets two names share a value (<c>A = 1001, B = 1001</c>), and
    /// <see cref="Enum.GetValues{TEnum}"/> would then list the value twice but name it once: names are the truth.
    /// </summary>
    private static (string Name, ushort Value)[] Members<TEnum>() where TEnum : struct, Enum =>
        Enum.GetNames<TEnum>().Select(n => (n, Convert.ToUInt16(Enum.Parse<TEnum>(n), System.Globalization.CultureInfo.InvariantCulture))).ToArray();

    private static void AssertUniqueValues<TEnum>() where TEnum : struct, Enum
    {
        var members = Members<TEnum>();
        Assert.NotEmpty(members);
        var shared = members.GroupBy(m => m.Value).Where(g => g.Count() > 1).Select(g => $"{g.Key}: {string.Join(", ", g.Select(m => m.Name))}").ToArray();
        Assert.True(shared.Length == 0, $"{typeof(TEnum).Name} values with two meanings: {string.Join("; ", shared)}");
        Assert.Equal(members.Length, Enum.GetValues<TEnum>().Distinct().Count());
    }

    [Fact]
    public void Every_account_code_has_its_own_value_above_the_client_space_that_fits_the_ids_15_bit_code_field()
    {
        AssertUniqueValues<AccountCode>();
        Assert.All(Members<AccountCode>(), m => Assert.InRange(m.Value, ChartOfAccounts.ClientCodeMax + 1, 0x7FFF));
        Assert.All(Members<AccountCode>(), m => Assert.True(ChartOfAccounts.IsReservedCode(m.Value), m.Name));
    }

    [Fact]
    public void Every_transfer_code_has_its_own_value_above_the_client_space()
    {
        AssertUniqueValues<TransferCode>();
        Assert.All(Members<TransferCode>(), m => Assert.InRange(m.Value, ChartOfAccounts.ClientCodeMax + 1, ushort.MaxValue));
        Assert.All(Members<TransferCode>(), m => Assert.True(ChartOfAccounts.IsReservedCode(m.Value), m.Name));
    }

    [Fact]
    public void Every_transfer_space_has_its_own_value_that_fits_the_ids_15_bit_code_field()
    {
        AssertUniqueValues<TransferSpace>();
        Assert.All(Members<TransferSpace>(), m => Assert.InRange(m.Value, 1, 0x7FFF));
    }

    [Fact]
    public void The_client_space_of_codes_ends_at_999()
    {
        Assert.Equal(999, ChartOfAccounts.ClientCodeMax);
        Assert.False(ChartOfAccounts.IsReservedCode(1));
        Assert.False(ChartOfAccounts.IsReservedCode(999));
        Assert.True(ChartOfAccounts.IsReservedCode(1000));
        Assert.True(ChartOfAccounts.IsReservedCode(ushort.MaxValue));
    }

    [Fact]
    public void Every_account_code_is_declared_exactly_once_in_the_chart()
    {
        var declared = ChartOfAccounts.Accounts.Select(a => a.Code).ToArray();
        var twice = declared.GroupBy(c => c).Where(g => g.Count() > 1).Select(g => g.Key.ToString()).ToArray();
        Assert.True(twice.Length == 0, $"declared more than once: {string.Join(", ", twice)}");
        Assert.Equal(Enum.GetNames<AccountCode>().Select(Enum.Parse<AccountCode>).Order(), declared.Order());
        foreach (AccountCode code in Enum.GetValues<AccountCode>()) Assert.Equal(code, ChartOfAccounts.Kind(code).Code);
        Assert.Throws<ArgumentOutOfRangeException>(() => ChartOfAccounts.Kind((AccountCode)1999));
        Assert.All(ChartOfAccounts.Accounts, a => Assert.False(string.IsNullOrWhiteSpace(a.Description), a.Code.ToString()));
    }

    [Fact]
    public void Accounts_of_principals_and_objects_never_go_below_zero_and_system_accounts_have_no_limit()
    {
        foreach (AccountKind kind in ChartOfAccounts.Accounts)
        {
            // A site's expenses are the one debit-normal object: it never goes below zero on its own side.
            AccountFlags expected = kind.Ownership == AccountOwnership.System ? AccountFlags.None
                : kind.Code == AccountCode.SiteExpenses ? AccountFlags.CreditsMustNotExceedDebits : AccountFlags.DebitsMustNotExceedCredits;
            Assert.True(expected == kind.Flags, $"{kind.Code} ({kind.Ownership}): {kind.Flags}");
        }
        // A lease's escrow pays out exactly what it was funded with, never more.
        Assert.Equal(AccountFlags.DebitsMustNotExceedCredits, ChartOfAccounts.Kind(AccountCode.LeaseEscrow).Flags);
        Assert.Equal(AccountOwnership.Object, ChartOfAccounts.Kind(AccountCode.LeaseEscrow).Ownership);
    }

    // ------------------------------------------------------------------ ids

    /// <summary>What an id is composed of: an account code or a transfer space, a qualifier and a number.</summary>
    private readonly record struct IdSpec(bool Transfer, ushort Code, ulong Qualifier, ulong Number)
    {
        public AccountOwnership Ownership => ChartOfAccounts.Kind((AccountCode)Code).Ownership;

        /// <summary>The id, through the chart's public constructors only.</summary>
        public UInt128 Id => Transfer
            ? ChartOfAccounts.TransferId((TransferSpace)Code, Qualifier, Number)
            : Ownership switch
            {
                AccountOwnership.System => ChartOfAccounts.SystemAccount((AccountCode)Code, AssetOf(Qualifier)),
                AccountOwnership.Principal => ChartOfAccounts.PrincipalAccount((AccountCode)Code, Number),
                _ => ChartOfAccounts.ObjectAccount((AccountCode)Code, Qualifier, Number),
            };

        private static Asset AssetOf(ulong code) => Asset.All.Single(a => a.Code == code);

        public override string ToString() => $"{(Transfer ? ((TransferSpace)Code).ToString() : ((AccountCode)Code).ToString())}/{Qualifier}/{Number}";
    }

    // Small values as often as large ones, so that ids differing in one low bit are compared too.
    private static readonly Gen<ulong> Numbers = Gen.OneOf(Gen.ULong[0, 3], Gen.ULong[ulong.MaxValue - 3, ulong.MaxValue], Gen.ULong);
    private static readonly Gen<ulong> Qualifiers = Gen.OneOf(Gen.ULong[0, 3], Gen.ULong[ChartOfAccounts.QualifierMax - 3, ChartOfAccounts.QualifierMax],
        Gen.ULong[0, ChartOfAccounts.QualifierMax]);

    private static readonly Gen<IdSpec> Accounts = Gen.Int[0, ChartOfAccounts.Accounts.Count - 1].SelectMany(i =>
    {
        AccountKind kind = ChartOfAccounts.Accounts[i];
        ushort code = (ushort)kind.Code;
        return kind.Ownership switch
        {
            // One per asset: the qualifier is the asset's code, the number 1.
            AccountOwnership.System => Gen.Int[0, Asset.All.Count - 1].Select(a => new IdSpec(false, code, Asset.All[a].Code, 1)),
            // The principal's id is the number (principal ids start at 1).
            AccountOwnership.Principal => Gen.OneOf(Gen.ULong[1, 4], Gen.ULong[1, ulong.MaxValue]).Select(p => new IdSpec(false, code, 0, p)),
            _ => Gen.Select(Qualifiers, Numbers).Select(x => new IdSpec(false, code, x.Item1, x.Item2)),
        };
    });

    private static readonly ushort[] Spaces = Enum.GetValues<TransferSpace>().Select(s => (ushort)s).ToArray();

    private static readonly Gen<IdSpec> Transfers = Gen.Select(Gen.Int[0, Spaces.Length - 1], Qualifiers, Numbers)
        .Select(x => new IdSpec(true, Spaces[x.Item1], x.Item2, x.Item3));

    /// <summary>A client-space id: anything with the upper half's high bit clear.</summary>
    private static readonly Gen<UInt128> ClientIds = Gen.Select(Gen.OneOf(Gen.ULong[0, 1], Gen.ULong[0, long.MaxValue]), Gen.ULong)
        .Select(x => new UInt128(x.Item1, x.Item2));

    [Fact]
    public void Ids_of_different_codes_qualifiers_and_numbers_never_collide()
    {
        foreach (Gen<IdSpec> specs in new[] { Accounts, Transfers })
            Gen.Select(specs, specs).Sample((a, b) =>
            {
                if (a == b) Assert.Equal(a.Id, b.Id);
                else Assert.True(a.Id != b.Id, $"{a} and {b} are both id {a.Id}");
            }, iter: 20_000);
    }

    [Fact]
    public void Ids_of_neighbouring_inputs_differ()
    {
        // The fields are packed side by side: a carry from one into the next would make two inputs one id.
        Transfers.Sample(t =>
        {
            var ids = new HashSet<UInt128> { t.Id };
            if (t.Number < ulong.MaxValue) Assert.True(ids.Add((t with { Number = t.Number + 1 }).Id), t.ToString());
            if (t.Qualifier < ChartOfAccounts.QualifierMax) Assert.True(ids.Add((t with { Qualifier = t.Qualifier + 1 }).Id), t.ToString());
            foreach (ushort space in Spaces.Where(s => s != t.Code)) Assert.True(ids.Add((t with { Code = space }).Id), t.ToString());
        });
    }

    [Fact]
    public void Every_chart_id_decodes_to_what_composed_it_and_is_reserved()
    {
        Gen.OneOf(Accounts, Transfers).Sample(s =>
        {
            UInt128 id = s.Id;
            Assert.True(ChartOfAccounts.IsReserved(id), s.ToString());
            Assert.True(ChartOfAccounts.TryDecode(id, out ushort code, out ulong qualifier, out ulong number), s.ToString());
            Assert.Equal((s.Code, s.Qualifier, s.Number), (code, qualifier, number));
        }, iter: 20_000);
    }

    [Fact]
    public void Every_client_space_id_is_not_reserved_does_not_decode_and_belongs_to_the_operators()
    {
        ClientIds.Sample(id =>
        {
            Assert.False(ChartOfAccounts.IsReserved(id));
            Assert.False(ChartOfAccounts.TryDecode(id, out _, out _, out _));
            Assert.Equal((AccountOwnership.Operators, 0UL), ChartOfAccounts.OwnerOf(id));
        }, iter: 20_000);
        foreach (UInt128 id in new[] { UInt128.Zero, UInt128.One, LastClient })
        {
            Assert.False(ChartOfAccounts.IsReserved(id));
            Assert.Equal((AccountOwnership.Operators, 0UL), ChartOfAccounts.OwnerOf(id));
        }
        Assert.True(ChartOfAccounts.IsReserved(FirstReserved));
        Assert.True(ChartOfAccounts.IsReserved(UInt128.MaxValue));
    }

    [Fact]
    public void OwnerOf_gives_the_principal_of_a_principal_account_and_no_principal_for_system_object_or_client_accounts()
    {
        Accounts.Sample(s =>
        {
            var (ownership, principal) = ChartOfAccounts.OwnerOf(s.Id);
            Assert.Equal(s.Ownership, ownership);
            Assert.Equal(s.Ownership == AccountOwnership.Principal ? s.Number : 0UL, principal);
            // A new account of the chart carries its code, its flags, and its owner in user_data_64.
            Account a = ChartOfAccounts.NewAccount((AccountCode)s.Code, s.Id, Asset.Usd);
            Assert.Equal((s.Id, s.Code, ChartOfAccounts.Kind((AccountCode)s.Code).Flags, principal), (a.Id, a.Code, a.Flags, a.UserData64));
        }, iter: 20_000);

        ulong customer = 42;
        Assert.Equal((AccountOwnership.Principal, customer), ChartOfAccounts.OwnerOf(ChartOfAccounts.PrincipalAccount(AccountCode.CustomerBalance, customer)));
        Assert.Equal((AccountOwnership.System, 0UL), ChartOfAccounts.OwnerOf(ChartOfAccounts.SystemAccount(AccountCode.Treasury, Asset.Usd)));
        Assert.Equal((AccountOwnership.Object, 0UL), ChartOfAccounts.OwnerOf(ChartOfAccounts.ObjectAccount(AccountCode.LeaseEscrow, 7, customer)));
        // A reserved id of a code the chart does not declare is the system's: it never names a principal.
        foreach (ushort undeclared in new ushort[] { 1000, 1999, 2999, 0x7FFF })
            Assert.Equal((AccountOwnership.System, 0UL), ChartOfAccounts.OwnerOf(new UInt128(ChartOfAccounts.ReservedBit | ((ulong)undeclared << 48), customer)));
    }

    [Fact]
    public void The_chart_refuses_to_compose_an_id_out_of_its_fields()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ChartOfAccounts.TransferId(TransferSpace.Exchange, ChartOfAccounts.QualifierMax + 1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => ChartOfAccounts.ObjectAccount(AccountCode.LeaseEscrow, ChartOfAccounts.QualifierMax + 1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => ChartOfAccounts.TransferId((TransferSpace)0, 0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => ChartOfAccounts.TransferId((TransferSpace)0x8000, 0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => ChartOfAccounts.PrincipalAccount(AccountCode.CustomerBalance, 0));
        // Each constructor serves its own kind of account only.
        Assert.Throws<ArgumentException>(() => ChartOfAccounts.PrincipalAccount(AccountCode.Treasury, 1));
        Assert.Throws<ArgumentException>(() => ChartOfAccounts.SystemAccount(AccountCode.CustomerBalance, Asset.Usd));
        Assert.Throws<ArgumentException>(() => ChartOfAccounts.ObjectAccount(AccountCode.NodeRevenue, 0, 1));
        // An account is made only under the id of its own code.
        Assert.Throws<ArgumentException>(() => ChartOfAccounts.NewAccount(AccountCode.ProviderRevenue, ChartOfAccounts.PrincipalAccount(AccountCode.CustomerBalance, 1), Asset.Usd));
        Assert.Throws<ArgumentException>(() => ChartOfAccounts.NewAccount(AccountCode.CustomerBalance, 5, Asset.Usd));
    }

    [Fact]
    public void Transfer_ids_of_two_spaces_never_collide_whatever_each_component_puts_in_its_qualifier_and_number()
    {
        // Each component (funding, inference, the exchange, tokens, the chain, energy) derives its transfer ids in its
        // own space from its own keys (a hash, a run epoch and a sequence): nothing it chooses can reach another's ids.
        Gen.Select(Transfers, Transfers).Where(t => t.Item1.Code != t.Item2.Code).Sample(t =>
        {
            var (a, b) = t;
            Assert.True(a.Id != b.Id, $"{a} and {b}");
            Assert.True(ChartOfAccounts.TryDecode(a.Id, out ushort space, out _, out _));
            Assert.Equal(a.Code, space);
        }, iter: 20_000);
    }
}
