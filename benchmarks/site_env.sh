#!/bin/bash
# The minimal shell equivalent of site_create (benchmarks/site_create.py): the same steps on the node,
# no checks, no idempotence. Usage (as root on the node): site_env.sh SITE [noreload]
# With CORE_FROM=<a release directory> the core is hard-linked from there instead of extracted (fills
# of hundreds of sites: ~60 MB of disk each otherwise).
set -euo pipefail
S="$1"; E=production; N="${S}_$E"; R="/var/www/sites/$S/$E"; V=6.1.9; PHP=8.2
SOCK="/run/php/pressluft-$N.sock"
pw() { head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32; }
groupadd "$N"
useradd -g "$N" -G redis -d "$R" -M -s /usr/sbin/nologin "$N"
install -d -m 0711 "/var/www/sites/$S"
install -d -o "$N" -g www-data -m 0750 "$R" "$R/releases"
install -d -o root -g "$N" -m 0751 "$R/shared"
install -d -o "$N" -g www-data -m 2750 "$R/shared/uploads"
install -d -o "$N" -g "$N" -m 0700 "$R/tmp"
install -d -o "$N" -g "$N" -m 0750 "$R/logs"
DBPW="$(pw)"; RPW="$(pw)"
mysql -e "CREATE DATABASE $N CHARACTER SET utf8mb4; CREATE USER '$N'@'localhost' IDENTIFIED BY '$DBPW';
  GRANT ALL ON \`${S}\\_$E\`.* TO '$N'@'localhost'"
{
  echo "<?php"
  echo "define('DB_NAME', '$N'); define('DB_USER', '$N'); define('DB_PASSWORD', '$DBPW');"
  echo "define('DB_HOST', 'localhost:/run/mysqld/mysqld.sock'); define('DB_CHARSET', 'utf8mb4'); define('DB_COLLATE', '');"
  for k in AUTH_KEY SECURE_AUTH_KEY LOGGED_IN_KEY NONCE_KEY AUTH_SALT SECURE_AUTH_SALT LOGGED_IN_SALT NONCE_SALT; do
    echo "define('$k', '$(pw)$(pw)');"
  done
  echo "\$table_prefix = 'wp_';"
  echo "define('WP_REDIS_PASSWORD', array('$N', '$RPW')); define('WP_REDIS_PREFIX', '$N:');"
  echo "if (!defined('ABSPATH')) { define('ABSPATH', '$R/current/'); }"
  echo "require_once ABSPATH . 'wp-settings.php';"
} >"$R/shared/wp-config.php"
chown root:"$N" "$R/shared/wp-config.php"; chmod 0640 "$R/shared/wp-config.php"
REDISCLI_AUTH="$(cat /etc/redis/pressluft-admin.pass)" redis-cli --no-auth-warning -s /run/redis/redis-server.sock \
  --user pressluft-admin ACL SETUSER "$N" reset on ">$RPW" "~$N:*" resetchannels +@all -@dangerous >/dev/null
REDISCLI_AUTH="$(cat /etc/redis/pressluft-admin.pass)" redis-cli --no-auth-warning -s /run/redis/redis-server.sock \
  --user pressluft-admin ACL SAVE >/dev/null
cat >"/etc/php/$PHP/fpm/pool.d/pressluft-$N.conf" <<POOL
[$N]
user = $N
group = $N
listen = $SOCK
listen.owner = www-data
listen.group = www-data
listen.mode = 0660
pm = ondemand
pm.max_children = 5
pm.process_idle_timeout = 10s
php_admin_value[open_basedir] = $R
POOL
if [[ -n "${CORE_FROM:-}" ]]; then
  cp -al "$CORE_FROM" "$R/releases/$V"
  rm -f "$R/releases/$V/wp-config.php" "$R/releases/$V/wp-content/uploads"
else
  mkdir "$R/releases/$V"
  tar -xzf "/var/cache/pressluft/wordpress-$V.tar.gz" -C "$R/releases/$V" --strip-components=1
fi
ln -s "$R/shared/wp-config.php" "$R/releases/$V/wp-config.php"
ln -s "$R/shared/uploads" "$R/releases/$V/wp-content/uploads"
ln -s "$R/releases/$V" "$R/current"
printf 'x%s' "$(pw)" | runuser -u "$N" -- wp --path="$R/current" core install --url="http://$S.localhost" --title="$S" \
  --admin_user=admin --admin_email="admin@$S.localhost" --prompt=admin_password --skip-email >/dev/null
cat >"/etc/nginx/pressluft-sites/$N.conf" <<NGINX
server {
    listen 80;
    server_name $S.localhost;
    root $R/current;
    index index.php;
    location ~* ^/wp-content/uploads/.*\.php { return 403; }
    location / { try_files \$uri \$uri/ /index.php?\$args; }
    location ~ \.php\$ { include snippets/pressluft-php.conf; fastcgi_pass unix:$SOCK; }
}
NGINX
[[ "${2:-}" == noreload ]] && exit 0
nginx -t -q
systemctl reload "php$PHP-fpm"
until [[ -S "$SOCK" ]]; do sleep 0.02; done
systemctl reload nginx
