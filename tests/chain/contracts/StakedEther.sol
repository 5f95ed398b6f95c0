// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title StakedEther: a minimal Lido/wstETH-style staking vault for tests.
/// @notice Staking ETH mints a non-rebasing receipt token (this contract is the ERC20) at
/// `exchangeRate` (wei of ETH per 1e18 receipt units, like wstETH's stEthPerToken). Unstaking is
/// two-phase, like Lido's withdrawal queue: `requestUnstake` burns the receipt tokens and fixes
/// the ETH owed at the current rate; `claim` pays it once `unstakeDelay` seconds have passed.
/// The owner (the test harness) sets the rate and the delay, and tops up ETH for rewards.
contract StakedEther {
    string public constant name = "Staked Ether Receipt";
    string public constant symbol = "stkETH";
    uint8 public constant decimals = 18;
    uint256 public constant RATE_UNIT = 1e18;

    struct UnstakeRequest {
        address owner;
        uint128 ethAmount;
        uint64 claimableAt;
        bool claimed;
    }

    address public owner;
    uint256 public exchangeRate;
    uint256 public unstakeDelay;
    uint256 public totalSupply;
    /// ETH promised to requests that are not claimed yet.
    uint256 public pendingClaims;

    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;
    UnstakeRequest[] private _requests;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);
    event Staked(address indexed account, uint256 ethAmount, uint256 shares, uint256 rate);
    event UnstakeRequested(
        uint256 indexed requestId,
        address indexed account,
        uint256 shares,
        uint256 ethAmount,
        uint256 claimableAt
    );
    event Claimed(uint256 indexed requestId, address indexed account, uint256 ethAmount);
    event ExchangeRateUpdated(uint256 oldRate, uint256 newRate);
    event UnstakeDelayUpdated(uint256 oldDelay, uint256 newDelay);

    error NotOwner(address caller);
    error ZeroAmount();
    error InvalidRate(uint256 rate);
    error InsufficientBalance(address account, uint256 balance, uint256 needed);
    error InsufficientAllowance(address spender, uint256 allowance, uint256 needed);
    error UnknownRequest(uint256 requestId);
    error NotRequestOwner(uint256 requestId, address caller);
    error AlreadyClaimed(uint256 requestId);
    error ClaimNotReady(uint256 requestId, uint256 claimableAt, uint256 nowTimestamp);
    error InsufficientLiquidity(uint256 available, uint256 needed);
    error EthTransferFailed(address to, uint256 amount);

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    constructor(uint256 initialRate, uint256 initialDelay) {
        if (initialRate == 0) revert InvalidRate(initialRate);
        owner = msg.sender;
        exchangeRate = initialRate;
        unstakeDelay = initialDelay;
        emit ExchangeRateUpdated(0, initialRate);
        emit UnstakeDelayUpdated(0, initialDelay);
    }

    receive() external payable {
        _stake(msg.sender, msg.value);
    }

    // ---- staking ----

    function stake() external payable returns (uint256 shares) {
        return _stake(msg.sender, msg.value);
    }

    function previewStake(uint256 ethAmount) public view returns (uint256) {
        return (ethAmount * RATE_UNIT) / exchangeRate;
    }

    function previewUnstake(uint256 shares) public view returns (uint256) {
        return (shares * exchangeRate) / RATE_UNIT;
    }

    function requestUnstake(uint256 shares) external returns (uint256 requestId) {
        if (shares == 0) revert ZeroAmount();
        uint256 ethAmount = previewUnstake(shares);
        _burn(msg.sender, shares);
        uint256 claimableAt = block.timestamp + unstakeDelay;
        requestId = _requests.length;
        _requests.push(
            UnstakeRequest({
                owner: msg.sender,
                ethAmount: uint128(ethAmount),
                claimableAt: uint64(claimableAt),
                claimed: false
            })
        );
        pendingClaims += ethAmount;
        emit UnstakeRequested(requestId, msg.sender, shares, ethAmount, claimableAt);
    }

    function claim(uint256 requestId) external returns (uint256 ethAmount) {
        if (requestId >= _requests.length) revert UnknownRequest(requestId);
        UnstakeRequest storage request = _requests[requestId];
        if (request.owner != msg.sender) revert NotRequestOwner(requestId, msg.sender);
        if (request.claimed) revert AlreadyClaimed(requestId);
        if (block.timestamp < request.claimableAt) {
            revert ClaimNotReady(requestId, request.claimableAt, block.timestamp);
        }
        ethAmount = request.ethAmount;
        if (address(this).balance < ethAmount) {
            revert InsufficientLiquidity(address(this).balance, ethAmount);
        }
        request.claimed = true;
        pendingClaims -= ethAmount;
        emit Claimed(requestId, msg.sender, ethAmount);
        (bool ok, ) = msg.sender.call{value: ethAmount}("");
        if (!ok) revert EthTransferFailed(msg.sender, ethAmount);
    }

    function getRequest(uint256 requestId)
        external
        view
        returns (address account, uint256 ethAmount, uint256 claimableAt, bool claimed)
    {
        if (requestId >= _requests.length) revert UnknownRequest(requestId);
        UnstakeRequest storage request = _requests[requestId];
        return (request.owner, request.ethAmount, request.claimableAt, request.claimed);
    }

    function requestCount() external view returns (uint256) {
        return _requests.length;
    }

    // ---- owner controls (the test harness) ----

    function setExchangeRate(uint256 newRate) external onlyOwner {
        if (newRate == 0) revert InvalidRate(newRate);
        emit ExchangeRateUpdated(exchangeRate, newRate);
        exchangeRate = newRate;
    }

    function setUnstakeDelay(uint256 newDelay) external onlyOwner {
        emit UnstakeDelayUpdated(unstakeDelay, newDelay);
        unstakeDelay = newDelay;
    }

    /// Adds ETH without minting, e.g. to back a raised exchange rate (staking rewards).
    function topUp() external payable {}

    // ---- ERC20 ----

    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            if (allowed < value) revert InsufficientAllowance(msg.sender, allowed, value);
            allowance[from][msg.sender] = allowed - value;
        }
        _transfer(from, to, value);
        return true;
    }

    // ---- internals ----

    function _stake(address account, uint256 ethAmount) internal returns (uint256 shares) {
        if (ethAmount == 0) revert ZeroAmount();
        shares = previewStake(ethAmount);
        if (shares == 0) revert ZeroAmount();
        totalSupply += shares;
        balanceOf[account] += shares;
        emit Transfer(address(0), account, shares);
        emit Staked(account, ethAmount, shares, exchangeRate);
    }

    function _burn(address account, uint256 shares) internal {
        uint256 balance = balanceOf[account];
        if (balance < shares) revert InsufficientBalance(account, balance, shares);
        balanceOf[account] = balance - shares;
        totalSupply -= shares;
        emit Transfer(account, address(0), shares);
    }

    function _transfer(address from, address to, uint256 value) internal {
        uint256 balance = balanceOf[from];
        if (balance < value) revert InsufficientBalance(from, balance, value);
        balanceOf[from] = balance - value;
        balanceOf[to] += value;
        emit Transfer(from, to, value);
    }
}
