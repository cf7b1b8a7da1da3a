<?php
/**
 * Pressluft must-use plugin: one-time login links and site info for Pressluft's node queries.
 *
 * Installed by the site_env role as shared/pressluft.php and loaded from the Pressluft-written
 * wp-config.php with the must-use plugins; edits are overwritten. Queries arrive through
 * `wp eval 'Pressluft_Queries::<method>();'` with their data as JSON on stdin (docs/node-queries.md).
 * Only WordPress's own functions are used on WordPress data (no SQL against its tables).
 */

if (!defined('ABSPATH')) {
    exit;
}

final class Pressluft_Queries
{
    const PREFIX = 'pressluft_login_';   // + sha256 of the token: the token itself is never stored
    const ACTION = 'pressluft_login';    // wp-login.php?action=pressluft_login&token=...

    /** `wp eval`: create a one-time login link for the request on stdin; prints JSON. */
    public static function login()
    {
        $in = json_decode((string) file_get_contents('php://stdin'), true);
        if (!is_array($in)) {
            WP_CLI::error('expected a JSON login request on stdin');
        }
        $ttl = isset($in['ttl']) ? (int) $in['ttl'] : 300;
        if ($ttl < 10 || $ttl > 3600) {
            WP_CLI::error('ttl must be 10-3600 seconds');
        }
        $redirect = isset($in['redirect']) ? (string) $in['redirect'] : '';
        if ($redirect !== '' && !preg_match('#^/(?!/)[\x21-\x7e]*$#', $redirect)) {
            WP_CLI::error('redirect must be a path on the site');
        }
        $login = isset($in['user']) ? (string) $in['user'] : '';
        if ($login !== '') {
            $user = get_user_by('login', $login);
            if (!$user) {
                WP_CLI::error(sprintf('no WordPress user %s', $login));
            }
        } else {
            $admins = get_users(array('role' => 'administrator', 'orderby' => 'ID', 'order' => 'ASC', 'number' => 1));
            $user = $admins ? $admins[0] : false;
            if (!$user) {
                WP_CLI::error('the site has no administrator; name a user with --user');
            }
        }
        $token = bin2hex(random_bytes(32));  // 256 bits
        $expires = time() + $ttl;
        $record = array(
            'user' => (int) $user->ID,
            'host' => strtolower((string) wp_parse_url(home_url(), PHP_URL_HOST)),
            'redirect' => $redirect,
            'expires' => $expires,
        );
        if (!set_transient(self::PREFIX . hash('sha256', $token), $record, $ttl)) {
            WP_CLI::error('could not store the login token');
        }
        $url = add_query_arg(array('action' => self::ACTION, 'token' => $token), site_url('wp-login.php', 'login'));
        echo wp_json_encode(array('url' => $url, 'user' => $user->user_login, 'expires_at' => gmdate('Y-m-d\TH:i:s\Z', $expires))), "\n";
    }

    /** wp-login.php?action=pressluft_login: GET/HEAD shows a confirmation page, only a POST consumes. */
    public static function handle_login()
    {
        nocache_headers();
        header('Cache-Control: no-store, no-cache, must-revalidate, max-age=0, private');
        header('Referrer-Policy: no-referrer');
        header('X-Robots-Tag: noindex, nofollow');
        $token = isset($_REQUEST['token']) ? (string) wp_unslash($_REQUEST['token']) : '';
        if (!preg_match('/^[0-9a-f]{64}$/', $token)) {
            self::refuse('This login link is not valid.');
        }
        $key = self::PREFIX . hash('sha256', $token);
        $record = get_transient($key);
        if (!is_array($record) || (int) $record['expires'] < time()) {
            self::refuse('This login link has expired or has already been used. Ask for a new one.');
        }
        $host = strtolower((string) wp_parse_url('http://' . (isset($_SERVER['HTTP_HOST']) ? $_SERVER['HTTP_HOST'] : ''), PHP_URL_HOST));
        if ($host !== $record['host']) {
            self::refuse('This login link belongs to another site address.');
        }
        if ('POST' !== strtoupper(isset($_SERVER['REQUEST_METHOD']) ? $_SERVER['REQUEST_METHOD'] : 'GET')) {
            self::confirm_page($token);  // a mail scanner's GET or HEAD burns nothing
        }
        // delete_transient is true for one caller only (the row or cache key existed): single use.
        if (!delete_transient($key)) {
            self::refuse('This login link has expired or has already been used. Ask for a new one.');
        }
        $user = get_user_by('id', (int) $record['user']);
        if (!$user) {
            self::refuse('The user of this login link no longer exists.');
        }
        wp_set_current_user($user->ID);
        wp_set_auth_cookie($user->ID, false, is_ssl());
        do_action('wp_login', $user->user_login, $user);
        $to = $record['redirect'] !== '' ? home_url($record['redirect']) : admin_url();
        wp_safe_redirect($to, 303);
        exit;
    }

    private static function confirm_page($token)
    {
        status_header(200);
        header('Content-Type: text/html; charset=utf-8');
        $action = esc_url(site_url('wp-login.php?action=' . self::ACTION, 'login_post'));
        echo '<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="robots" content="noindex">'
            . '<title>' . esc_html__('Log in') . '</title></head><body>'
            . '<form method="post" action="' . $action . '">'
            . '<input type="hidden" name="token" value="' . esc_attr($token) . '">'
            . '<p>' . esc_html(sprintf('Log in to %s?', get_bloginfo('name'))) . '</p>'
            . '<button type="submit">' . esc_html__('Log In') . '</button></form></body></html>';
        exit;
    }

    private static function refuse($message)
    {
        wp_die(esc_html($message), 'Login link', array('response' => 403));
    }

    /** `wp eval`: versions, plugins and themes with the updates WordPress knows of, disk usage; JSON. */
    public static function info()
    {
        global $wpdb;
        require_once ABSPATH . 'wp-admin/includes/plugin.php';
        require_once ABSPATH . 'wp-admin/includes/update.php';
        $plugin_updates = get_site_transient('update_plugins');
        $plugins = array();
        foreach (get_plugins() as $file => $data) {
            $update = isset($plugin_updates->response[$file]) ? $plugin_updates->response[$file] : null;
            $plugins[] = array(
                'name' => dirname($file) === '.' ? basename($file, '.php') : dirname($file),
                'title' => $data['Name'],
                'version' => $data['Version'],
                'active' => is_plugin_active($file),
                'update' => $update && isset($update->new_version) ? $update->new_version : null,
            );
        }
        $theme_updates = get_site_transient('update_themes');
        $active = get_stylesheet();
        $themes = array();
        foreach (wp_get_themes() as $slug => $theme) {
            $update = isset($theme_updates->response[$slug]['new_version']) ? $theme_updates->response[$slug]['new_version'] : null;
            $themes[] = array('name' => $slug, 'version' => $theme->get('Version'), 'active' => $slug === $active, 'update' => $update);
        }
        $core = get_site_transient('update_core');
        $core_update = null;
        if (is_object($core) && !empty($core->updates)) {
            foreach ($core->updates as $offer) {
                if (isset($offer->response) && $offer->response === 'upgrade') {
                    $core_update = $offer->current;
                    break;
                }
            }
        }
        $budget = microtime(true) + 5.0;  // the query's deadline is 10 s: sizes stop counting at 5 s
        $release = realpath(ABSPATH);
        $uploads = wp_get_upload_dir();
        $db = $wpdb->get_var($wpdb->prepare(
            'SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.TABLES WHERE table_schema = %s',
            DB_NAME
        ));
        echo wp_json_encode(array(
            'wordpress' => array('version' => get_bloginfo('version'), 'update' => $core_update),
            'php' => array('version' => PHP_VERSION),
            'table_prefix' => $wpdb->prefix,
            'plugins' => $plugins,
            'themes' => $themes,
            'disk' => array(
                'release' => array('path' => $release) + self::size($release, $budget),
                'uploads' => array('path' => realpath($uploads['basedir'])) + self::size(realpath($uploads['basedir']), $budget),
                'database' => array('bytes' => (int) $db),
            ),
        )), "\n";
    }

    private static function size($path, $budget)
    {
        $bytes = 0;
        $files = 0;
        if (!$path || !is_dir($path)) {
            return array('bytes' => 0, 'files' => 0, 'complete' => true);
        }
        $it = new RecursiveIteratorIterator(new RecursiveDirectoryIterator($path, FilesystemIterator::SKIP_DOTS));
        foreach ($it as $file) {
            if ($file->isFile() && !$file->isLink()) {
                $bytes += $file->getSize();
                $files++;
            }
            if (($files & 1023) === 0 && microtime(true) > $budget) {
                return array('bytes' => $bytes, 'files' => $files, 'complete' => false);
            }
        }
        return array('bytes' => $bytes, 'files' => $files, 'complete' => true);
    }
}

add_action('login_form_' . Pressluft_Queries::ACTION, array('Pressluft_Queries', 'handle_login'));
