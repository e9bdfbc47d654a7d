# Homebrew formula for Driftlock: builds from source with cargo, installs the binary and an
# example configuration, and runs it as a service (`brew services start driftlock`).
class Driftlock < Formula
  desc "Self-hosted, explainable anomaly detection with usage-based billing"
  homepage "https://github.com/driftlock/driftlock"
  url "https://github.com/driftlock/driftlock/archive/refs/tags/v0.1.0.tar.gz"
  sha256 "0000000000000000000000000000000000000000000000000000000000000000"
  license "Apache-2.0"
  head "https://github.com/driftlock/driftlock.git", branch: "main"

  depends_on "rust" => :build

  def install
    system "cargo", "install", *std_cargo_args
    (etc/"driftlock").mkpath
    etc.install "packaging/driftlock.example.toml" => "driftlock/driftlock.toml" unless (etc/"driftlock/driftlock.toml").exist?
    pkgshare.install "packaging/driftlock.example.toml"
    (var/"driftlock").mkpath
  end

  def caveats
    <<~EOS
      The configuration is in #{etc}/driftlock/driftlock.toml and the data in #{var}/driftlock.
      On first start the admin token is written to #{var}/driftlock/admin.token.
    EOS
  end

  service do
    run [opt_bin/"driftlock", "serve", "--config", etc/"driftlock/driftlock.toml", "--data-dir", var/"driftlock"]
    keep_alive true
    log_path var/"log/driftlock.log"
    error_log_path var/"log/driftlock.log"
    working_dir var/"driftlock"
  end

  test do
    port = free_port
    data = testpath/"data"
    pid = fork { exec bin/"driftlock", "serve", "--listen", "127.0.0.1:#{port}", "--data-dir", data }
    sleep 2
    assert_match "ok", shell_output("curl -s http://127.0.0.1:#{port}/healthz")
    assert_predicate data/"admin.token", :exist?
  ensure
    Process.kill("TERM", pid)
  end
end
