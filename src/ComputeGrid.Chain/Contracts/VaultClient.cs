using System.Numerics;
using Nethereum.RPC.Eth.DTOs;
using Nethereum.Web3;
using static ComputeGrid.Chain.Contracts.ChainCalls;

namespace ComputeGrid.Chain.Contracts;

/// <summary>
/// One <c>Deposited</c> event: the key that credits it exactly once is (<paramref name="TransactionHash"/>,
/// <paramref name="LogIndex"/>); <paramref name="BlockNumber"/> counts its confirmations.
/// </summary>
/// <param name="TransactionHash">0x-prefixed transaction hash.</param>
/// <param name="LogIndex">The log's index in its block.</param>
/// <param name="BlockNumber">The block that holds it.</param>
/// <param name="BlockHash">That block's hash (it changes if a reorg replaces the block).</param>
/// <param name="Depositor">Who deposited.</param>
/// <param name="Account">The ledger account named, bytes32 hex.</param>
/// <param name="Amount">Micro-units (stablecoin) or shares.</param>
public sealed record ChainDeposit(string TransactionHash, long LogIndex, long BlockNumber, string BlockHash, string Depositor, string Account, long Amount);

/// <summary>The calls the server makes on the <c>Vault</c>; withdrawals are sent by the operator's account.</summary>
public sealed class VaultClient(IWeb3 web3, string address)
{
    /// <summary>The contract address.</summary>
    public string Address { get; } = address;

    /// <summary>Deposits <paramref name="amount"/> for ledger account <paramref name="account"/> (needs an allowance).</summary>
    public Task<ChainReceipt> DepositAsync(long amount, string account) =>
        SendAsync(web3, Address, new DepositFunction { Amount = FromMicro(amount, nameof(amount)), Account = Bytes32(account, nameof(account)) });

    /// <summary>Deposits with an EIP-2612 permit for the vault signed by the sender, in one transaction.</summary>
    public Task<ChainReceipt> DepositWithPermitAsync(long amount, string account, long deadline, string permitSignature)
    {
        var (v, r, s) = SplitSignature(permitSignature);
        return SendAsync(web3, Address, new VaultDepositWithPermitFunction
        {
            Amount = FromMicro(amount, nameof(amount)), Account = Bytes32(account, nameof(account)), Deadline = deadline, V = v, R = r, S = s,
        });
    }

    /// <summary>Pays <paramref name="amount"/> to <paramref name="to"/> once per <paramref name="withdrawalId"/> (operator only).</summary>
    /// <exception cref="ChainRevertException">"withdrawal already paid" for a repeated id.</exception>
    public Task<ChainReceipt> WithdrawAsync(string to, long amount, string withdrawalId) =>
        SendAsync(web3, Address, new VaultWithdrawFunction { To = to, Amount = FromMicro(amount, nameof(amount)), WithdrawalId = Bytes32(withdrawalId, nameof(withdrawalId)) });

    /// <summary>Whether <paramref name="withdrawalId"/> was paid.</summary>
    public Task<bool> IsWithdrawnAsync(string withdrawalId) =>
        QueryAsync<VaultWithdrawnFunction, bool>(web3, Address, new() { WithdrawalId = Bytes32(withdrawalId, nameof(withdrawalId)) });

    /// <summary>The deposits in blocks <paramref name="fromBlock"/>..<paramref name="toBlock"/> (inclusive), in chain order.</summary>
    public Task<IReadOnlyList<ChainDeposit>> GetDepositsAsync(long fromBlock, long toBlock) => DepositsAsync(web3, Address, fromBlock, toBlock);
}
